import NatPrec.Spec.Basic

/-!
# THM-DOUBLE-ROUNDING-NEVER-BETTER and THM-ORDER-NOT-STRICT (spec/08-epilogue.md; seed 000 §3.2–3.3)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
Stated over ℤ.
-/

namespace NatPrec

/-- THM-DOUBLE-ROUNDING-NEVER-BETTER (seed 000 §3.2): for codebooks `C` (final) and `M` (intermediate,
nested or not) and any tie choices, the nearest codeword q of x in C is never farther from x than
q', the C-nearest codeword of the M-nearest point m of x (rounding twice). -/
theorem double_rounding_never_better (C M : Int → Prop) (x q m q' : Int)
    (hq : IsNearest C x q) (_hm : IsNearest M x m) (hq' : IsNearest C m q') :
    iabs (x - q) ≤ iabs (x - q') :=
  hq.2 q' hq'.1

/-- ReLU. -/
def relu (v : Int) : Int := if 0 < v then v else 0

/-- THM-ORDER-NOT-STRICT (refutes "strictly" in seed 000 §3.3): a monotone quantizer Q with Q(0) = 0
commutes with ReLU, so quantize-then-activate equals activate-then-quantize and the distortion is
equal, not strictly larger. -/
theorem order_not_strict (Q : Int → Int) (hmono : ∀ a b, a ≤ b → Q a ≤ Q b) (h0 : Q 0 = 0) (t : Int) :
    Q (relu t) = relu (Q t) := by
  unfold relu
  by_cases ht : 0 < t
  · rw [if_pos ht]
    have hq0 := hmono 0 t (by omega)
    rw [h0] at hq0
    by_cases hq : 0 < Q t
    · rw [if_pos hq]
    · rw [if_neg hq]
      omega
  · rw [if_neg ht, h0]
    have hq0 := hmono t 0 (by omega)
    rw [h0] at hq0
    by_cases hq : 0 < Q t
    · exact absurd hq (by omega)
    · rw [if_neg hq]

end NatPrec
