import NatPrec.Spec.NatPrec

/-!
# DEF-NATPREC bounds: 2^(b*−1) < |supp| ≤ 2^b* (spec/01-support.md; seed 001 Def. 3)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
-/

namespace NatPrec

theorem lt_two_pow : ∀ n : Nat, n < 2 ^ n
  | 0 => by decide
  | n + 1 => by
    have ih := lt_two_pow n
    rw [Nat.pow_succ]
    omega

theorem clog2Aux_spec (n : Nat) : ∀ (fuel b : Nat), (∀ c, c < b → 2 ^ c < n) → n ≤ 2 ^ (b + fuel) →
    n ≤ 2 ^ clog2Aux n b fuel ∧ ∀ c, c < clog2Aux n b fuel → 2 ^ c < n
  | 0, b, hlow, hfit => by
    show n ≤ 2 ^ b ∧ ∀ c, c < b → 2 ^ c < n
    exact ⟨hfit, hlow⟩
  | fuel + 1, b, hlow, hfit => by
    by_cases h : n ≤ 2 ^ b
    · have e : clog2Aux n b (fuel + 1) = b := by
        first
          | simp [clog2Aux, h]
          | (show (if n ≤ 2 ^ b then b else clog2Aux n (b + 1) fuel) = b; rw [if_pos h])
      rw [e]
      exact ⟨h, hlow⟩
    · have e : clog2Aux n b (fuel + 1) = clog2Aux n (b + 1) fuel := by
        first
          | simp [clog2Aux, h]
          | (show (if n ≤ 2 ^ b then b else clog2Aux n (b + 1) fuel) = clog2Aux n (b + 1) fuel; rw [if_neg h])
      rw [e]
      apply clog2Aux_spec n fuel (b + 1)
      · intro c hc
        by_cases hcb : c < b
        · exact hlow c hcb
        · have hc' : c = b := by omega
          rw [hc']
          omega
      · have e2 : b + 1 + fuel = b + (fuel + 1) := by omega
        rw [e2]
        exact hfit

theorem natPrec_spec (n : Nat) : n ≤ 2 ^ natPrec n ∧ ∀ c, c < natPrec n → 2 ^ c < n :=
  clog2Aux_spec n n 0 (fun c hc => absurd hc (Nat.not_lt_zero c))
    (by rw [Nat.zero_add]; exact Nat.le_of_lt (lt_two_pow n))

/-- DEF-NATPREC: b* is the least b with |supp| ≤ 2^b. -/
theorem natPrec_least (n b : Nat) (h : n ≤ 2 ^ b) : natPrec n ≤ b := by
  by_cases hlt : b < natPrec n
  · have := (natPrec_spec n).2 b hlt
    omega
  · omega

/-- DEF-NATPREC (seed 001 Def. 3, the natural precision): for a realized support of n ≥ 2 values,
2^(b*−1) < n ≤ 2^b* with b* = ⌈log2 n⌉. -/
theorem natPrec_bounds (n : Nat) (hn : 2 ≤ n) : 2 ^ (natPrec n - 1) < n ∧ n ≤ 2 ^ natPrec n := by
  have hpos : natPrec n ≠ 0 := by
    intro h0
    have := (natPrec_spec n).1
    rw [h0, Nat.pow_zero] at this
    omega
  exact ⟨(natPrec_spec n).2 (natPrec n - 1) (by omega), (natPrec_spec n).1⟩

end NatPrec
