import NatPrec.Spec.Basic

/-!
# THM-MARGIN-ROBUST (spec/04-margin.md; seed 001 Def. 6)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
Stated over ℤ: the statement is linear and homogeneous, so rational data scale to integers.
-/

namespace NatPrec

/-- THM-MARGIN-ROBUST (seed 001 Def. 6): if the margin of x between its codeword c and another
codeword c' exceeds η, a perturbation d with |d| ≤ η/2 leaves c strictly nearer than c'. -/
theorem margin_robust (x d c c' η : Int) (hγ : margin x c c' > η) (hd : 2 * iabs d ≤ η) :
    iabs (x + d - c) < iabs (x + d - c') := by
  unfold margin iabs at *
  split at hγ <;> split at hγ <;> split at hd <;> split <;> split <;> omega

/-- THM-MARGIN-ROBUST: the strict inequality is needed — margin exactly η = 2 and d = 1 put x + d on
the boundary between the codewords 0 and 2. -/
theorem margin_strict_needed :
    margin 0 0 2 = 2 ∧ 2 * iabs 1 ≤ 2 ∧ iabs (0 + 1 - 0) = iabs (0 + 1 - 2) := by
  first
    | decide
    | simp [margin, iabs]

end NatPrec
