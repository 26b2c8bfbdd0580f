"""DEF-CLAIM-TEST — the studies ``natprec study NAME`` runs, each a function a Python user can call on any MeasuredModel."""

from __future__ import annotations

from .measure import DEFAULT_TOLERANCE, check_tolerances, measure
from .runner import MeasuredModel

__all__ = ["DEFAULT_CLAIM_TOLERANCES", "claim_study", "STUDIES"]

#: The report's ε first, then a decade on either side.
DEFAULT_CLAIM_TOLERANCES = (DEFAULT_TOLERANCE, DEFAULT_TOLERANCE / 10, DEFAULT_TOLERANCE * 10)


def claim_study(mm: MeasuredModel, *, tolerances=DEFAULT_CLAIM_TOLERANCES, sites=None, kinds=("weight", "input"),
                module_types=None, full_sweep: bool = False, progress=False, checkpoint=None, device=None) -> dict:
    """DEF-CLAIM-TEST — the claim's test at several ε: b*_v(ε) over the int family, Δ_v(ε) and b_H,v(ε) per site.

    The report document of :func:`natprec.model.measure` with the int family only and no Jacobian
    proxy; ``doc["claim"]`` holds one result per ε, the first ε being the document's ``tolerance``.
    """
    ts = check_tolerances("--tolerances", tolerances)
    return measure(mm, sites=sites, kinds=kinds, module_types=module_types, formats="int", tolerance=ts[0], claim_tolerances=ts[1:],
                   full_sweep=full_sweep, jacobian=False, progress=progress, checkpoint=checkpoint, device=device)


#: name → (one-line description, function(mm, **options) → document).
STUDIES = {
    "claim": ("does the information a site holds predict the precision it needs? (spec/11 DEF-CLAIM-TEST)", claim_study),
}
