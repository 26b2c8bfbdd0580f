"""DEF-STUDY — the seeds' experiments as functions on a model; ``natprec study NAME`` runs them (spec/12).

:data:`STUDIES` maps each name to its :class:`Study`; the command, its flags and its output are
derived from that entry.
"""

from .billm import BILLM_STUDY
from .bottleneck import BOTTLENECK_STUDY
from .carrier import CARRIER_STUDY
from .claim import CLAIM_STUDY
from .epilogue import EPILOGUE_STUDY
from .geometry import GEOMETRY_STUDY
from .registry import VERDICTS, Option, Steps, Study, claim_row, parse_option
from .rounding import ROUNDING_STUDY
from .seed003 import SEED003_STUDY
from .shaping import SHAPING_STUDY
from .softmax import SOFTMAX_STUDY

__all__ = ["STUDIES", "Study", "Option", "Steps", "VERDICTS", "claim_row", "parse_option"]

#: Every study, by name (the order ``natprec study --list`` prints).
STUDIES = {s.name: s for s in (
    CLAIM_STUDY,
    CARRIER_STUDY,
    SHAPING_STUDY,
    GEOMETRY_STUDY,
    ROUNDING_STUDY,
    BILLM_STUDY,
    SOFTMAX_STUDY,
    BOTTLENECK_STUDY,
    SEED003_STUDY,
    EPILOGUE_STUDY,
)}
