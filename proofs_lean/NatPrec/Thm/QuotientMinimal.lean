import NatPrec.Spec.Basic
import NatPrec.Thm.Injectivity

/-!
# THM-QUOTIENT-MINIMAL, part (2) (spec/01-support.md; seed 001 Def. 3, b*_τ)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
Stated over ℤ for the outputs g = G ∘ z of the sorted support, with ℓ = |·|.
Part (1), that the greedy scan's leaders satisfy the two hypotheses `hmono` and `hsep`, is the
prose proof in spec/01; the exhaustive check runs the reference's greedy scan.
-/

namespace NatPrec

/-- THM-QUOTIENT-MINIMAL (2), "greedy stays ahead": let l 0 < … < l (m−1) be the greedy leaders, with
g nondecreasing along them (G monotone) and consecutive leaders more than τ apart (as the greedy
scan makes them). Then any partition `cls` of the support into k classes whose members are pairwise
within τ has k ≥ m: the greedy quotient is minimal, so b*_τ = ⌈log2 m⌉ is the least bit count. -/
theorem quotient_minimal (g : Nat → Int) (l : Nat → Nat) (m k : Nat) (τ : Int)
    (hmono : ∀ i j, i ≤ j → j < m → g (l i) ≤ g (l j))
    (hsep : ∀ j, j + 1 < m → g (l (j + 1)) - g (l j) > τ)
    (cls : Nat → Nat) (hcls : ∀ j, j < m → cls (l j) < k)
    (hpair : ∀ a b, cls a = cls b → iabs (g a - g b) ≤ τ) : m ≤ k := by
  apply pigeonhole m k (fun j => cls (l j)) hcls
  intro i j hi hj h
  have hab := hpair (l i) (l j) h
  unfold iabs at hab
  by_cases hij : i < j
  · have h1 := hmono (i + 1) j (by omega) hj
    have h2 := hsep i (by omega)
    split at hab <;> omega
  · by_cases hji : j < i
    · have h1 := hmono (j + 1) i (by omega) hi
      have h2 := hsep j (by omega)
      split at hab <;> omega
    · omega

end NatPrec
