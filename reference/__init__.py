"""natprec.reference — the exact NumPy reference tier.  It *is* the definition (see spec/).

Every public function's docstring names its spec ID; spec/index.toml maps each ID
to its symbol here, its kernel, its conformance tests and its proof.
"""

from ._domain import FLOAT_DTYPES, NAN_POLICIES, assert_subnormals_survive, total_order_key
from .codebook import TIE_RULES, Codebook, VoronoiCell, nearest_index, thresholds, voronoi_cells
from .entropy import (
    EntropyInterval,
    Histogram,
    discretized_entropy_bits,
    discretized_histogram,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    gaussian_discretized_entropy_bits,
    operational_natural_precision_bits,
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
    AbsmaxBlockFormat,
    BlockQuantized,
    ElementFormat,
    MXFormat,
    NVFP4Format,
    dequantize,
    get_format,
    quantize,
)
from .injectivity import InjectivityReport, TaskMergeReport, collision_probability, injectivity_report, task_merge_check
from .landauer import BOLTZMANN_J_PER_K, boundary_cost_joules, is_free_boundary, landauer_energy_joules
from .margin import margin_guarantees_codes, min_voronoi_margin, voronoi_margin
from .support import (
    Support,
    TaskQuotient,
    natural_precision,
    natural_precision_task,
    realized_support,
    support_size,
    task_quotient,
)

__all__ = [
    "FLOAT_DTYPES", "NAN_POLICIES", "assert_subnormals_survive", "total_order_key",
    "TIE_RULES", "Codebook", "VoronoiCell", "nearest_index", "thresholds", "voronoi_cells",
    "EntropyInterval", "Histogram", "discretized_entropy_bits", "discretized_histogram",
    "entropy_bits_from_counts", "entropy_bootstrap_interval", "gaussian_discretized_entropy_bits",
    "operational_natural_precision_bits", "sparse_gaussian_discretized_entropy_bits",
    "uniform_discretized_entropy_bits",
    "ACTIVATIONS", "all_finite_values", "double_rounding", "epilogue_order_comparison",
    "CodebookError", "EmptyInputError", "FlushToZeroError", "InputFileError", "InvalidDTypeError",
    "InvalidParameterError", "MissingDependencyError", "NaNInputError", "NatprecError", "NonFiniteInputError",
    "ProblemTooLargeError", "UnknownFormatError",
    "FORMAT_NAMES", "AbsmaxBlockFormat", "BlockQuantized", "ElementFormat", "MXFormat", "NVFP4Format",
    "dequantize", "get_format", "quantize",
    "InjectivityReport", "TaskMergeReport", "collision_probability", "injectivity_report", "task_merge_check",
    "BOLTZMANN_J_PER_K", "boundary_cost_joules", "is_free_boundary", "landauer_energy_joules",
    "margin_guarantees_codes", "min_voronoi_margin", "voronoi_margin",
    "Support", "TaskQuotient", "natural_precision", "natural_precision_task", "realized_support", "support_size", "task_quotient",
]
