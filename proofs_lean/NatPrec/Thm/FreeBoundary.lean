import NatPrec.Spec.Basic

/-!
# THM-FREE-BOUNDARY (spec/06-landauer.md; seed 000 §4.2)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
Stated over ℤ (entropies and bit widths on a common denominator).
-/

namespace NatPrec

/-- THM-FREE-BOUNDARY (seed 000 §4.2): with k = kT ln 2 > 0, the boundary cost
k · max(0, H_source − b_target) is zero if and only if H_source ≤ b_target. (It does not say the
conversion is lossless; spec/06 gives the counterexamples.) -/
theorem free_boundary (k h b : Int) (hk : 0 < k) : boundaryCost k h b = 0 ↔ h ≤ b := by
  unfold boundaryCost posPart
  by_cases hp : 0 < h - b
  · rw [if_pos hp]
    have hpos := Int.mul_pos hk hp
    constructor
    · intro h0
      rw [h0] at hpos
      exact absurd hpos (Int.lt_irrefl 0)
    · intro hle
      exact absurd hp (by omega)
  · rw [if_neg hp, Int.mul_zero]
    constructor
    · intro _
      omega
    · intro _
      rfl

end NatPrec
