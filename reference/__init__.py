"""natprec.reference — the exact NumPy reference tier.  It *is* the definition (see spec/).

Every public function's docstring names its spec ID; spec/index.toml maps each ID
to its symbol here, its kernel, its conformance tests and its proof.  The operations a
tier can accelerate are ``execute_*(prepare_*(...))``: ``prepare_*`` runs every check and
returns a frozen plan, ``execute_*`` is the reference's executor of that plan
(spec/00-conventions.md).  Format facts live in :mod:`natprec.reference.registry`.
"""

from ._domain import (
    FLOAT_DTYPES,
    NAN_POLICIES,
    as_float_array,
    assert_subnormals_survive,
    from_total_order_key,
    has_nan,
    nan_mask,
    total_order_key,
)
from .codebook import TIE_RULES, Codebook, VoronoiCell, nearest_index, thresholds, voronoi_cells
from .entropy import (
    EntropyInterval,
    Histogram,
    HistogramPlan,
    discretized_entropy_bits,
    discretized_histogram,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    entropy_bootstrap_interval_from_counts,
    execute_discretized_histogram,
    gaussian_discretized_entropy_bits,
    histogram_bins,
    operational_natural_precision_bits,
    prepare_discretized_histogram,
    sparse_gaussian_discretized_entropy_bits,
    uniform_discretized_entropy_bits,
)
from .epilogue import ACTIVATIONS, all_finite_values, double_rounding, epilogue_order_comparison
from .errors import (
    CodebookError,
    EmptyInputError,
    FlushToZeroError,
    InputFileError,
    InvalidDTypeError,
    InvalidParameterError,
    MissingDependencyError,
    NaNInputError,
    NatprecError,
    NonFiniteInputError,
    ProblemTooLargeError,
    UnknownFormatError,
)
from .formats import (
    FORMAT_NAMES,
    LAYOUTS,
    AbsmaxBlockFormat,
    BlockDequantizePlan,
    BlockInputPlan,
    BlockQuantized,
    BlockQuantizePlan,
    DequantizePlan,
    ElementFormat,
    MXFormat,
    NVFP4Format,
    QuantizePlan,
    dequantize,
    execute_dequantize,
    execute_quantize,
    get_format,
    prepare_block_input,
    prepare_dequantize,
    prepare_quantize,
    quantize,
    resolve_format,
)
from .injectivity import (
    DEFAULT_MAX_LISTED,
    CellPairs,
    Collision,
    InjectivityPlan,
    InjectivityReport,
    TaskMergeReport,
    collision_probability,
    execute_injectivity,
    finish_census,
    injectivity_report,
    prepare_injectivity,
    task_merge_check,
)
from .landauer import (
    BOLTZMANN_J_PER_K,
    ErasedInformation,
    boundary_cost_joules,
    erased_information,
    is_free_boundary,
    landauer_energy_joules,
)
from .margin import (
    MarginPlan,
    MinMarginPlan,
    execute_min_voronoi_margin,
    execute_voronoi_margin,
    margin_guarantees_codes,
    min_voronoi_margin,
    prepare_min_voronoi_margin,
    prepare_voronoi_margin,
    voronoi_margin,
)
from .registry import ALIASES, bits_per_element, block_format_names, canonical_name, element_format_names
from .support import (
    Support,
    SupportPlan,
    TaskQuotient,
    execute_realized_support,
    execute_support_size,
    natural_precision,
    natural_precision_task,
    prepare_support,
    realized_support,
    support_size,
    task_quotient,
)

__all__ = [
    "FLOAT_DTYPES", "NAN_POLICIES", "as_float_array", "assert_subnormals_survive", "from_total_order_key", "nan_mask",
    "has_nan", "total_order_key",
    "TIE_RULES", "Codebook", "VoronoiCell", "nearest_index", "thresholds", "voronoi_cells",
    "EntropyInterval", "Histogram", "HistogramPlan", "prepare_discretized_histogram", "execute_discretized_histogram",
    "discretized_entropy_bits", "discretized_histogram", "histogram_bins",
    "entropy_bits_from_counts", "entropy_bootstrap_interval", "entropy_bootstrap_interval_from_counts", "gaussian_discretized_entropy_bits",
    "operational_natural_precision_bits", "sparse_gaussian_discretized_entropy_bits",
    "uniform_discretized_entropy_bits",
    "ACTIVATIONS", "all_finite_values", "double_rounding", "epilogue_order_comparison",
    "CodebookError", "EmptyInputError", "FlushToZeroError", "InputFileError", "InvalidDTypeError",
    "InvalidParameterError", "MissingDependencyError", "NaNInputError", "NatprecError", "NonFiniteInputError",
    "ProblemTooLargeError", "UnknownFormatError",
    "FORMAT_NAMES", "LAYOUTS", "AbsmaxBlockFormat", "BlockQuantized", "ElementFormat", "MXFormat", "NVFP4Format",
    "dequantize", "get_format", "quantize", "resolve_format",
    "QuantizePlan", "BlockQuantizePlan", "prepare_quantize", "execute_quantize", "BlockInputPlan", "prepare_block_input",
    "DequantizePlan", "BlockDequantizePlan", "prepare_dequantize", "execute_dequantize",
    "ALIASES", "bits_per_element", "block_format_names", "canonical_name", "element_format_names",
    "InjectivityReport", "TaskMergeReport", "collision_probability", "injectivity_report", "task_merge_check",
    "DEFAULT_MAX_LISTED", "Collision", "InjectivityPlan", "CellPairs", "prepare_injectivity", "execute_injectivity", "finish_census",
    "BOLTZMANN_J_PER_K", "boundary_cost_joules", "is_free_boundary", "landauer_energy_joules",
    "ErasedInformation", "erased_information",
    "margin_guarantees_codes", "min_voronoi_margin", "voronoi_margin",
    "MarginPlan", "prepare_voronoi_margin", "execute_voronoi_margin",
    "MinMarginPlan", "prepare_min_voronoi_margin", "execute_min_voronoi_margin",
    "Support", "SupportPlan", "prepare_support", "execute_realized_support", "execute_support_size",
    "TaskQuotient", "natural_precision", "natural_precision_task", "realized_support", "support_size", "task_quotient",
]
