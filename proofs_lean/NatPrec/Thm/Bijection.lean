import NatPrec.Spec.Basic

/-!
# THM-BIJECTION-INVARIANCE (spec/01-support.md; seed 001 Prop. 1)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
-/

namespace NatPrec

-- `open Classical in` (core Lean) makes every proposition decidable, for the `if` in the decoder.
open Classical in
/-- THM-BIJECTION-INVARIANCE (seed 001 Prop. 1): a map that is one-to-one on the realized support
loses no information — there is a decoder `g` that recovers every realized value from its image. -/
theorem bijection_recovers {α β : Type} [Inhabited α] (S : α → Prop) (f : α → β)
    (hf : InjOn f S) : ∃ g : β → α, ∀ x, S x → g (f x) = x := by
  refine ⟨fun y => if h : ∃ x, S x ∧ f x = y then Classical.choose h else default, ?_⟩
  intro x hx
  have h : ∃ x', S x' ∧ f x' = f x := ⟨x, hx, rfl⟩
  show (if h : ∃ x', S x' ∧ f x' = f x then Classical.choose h else default) = x
  rw [dif_pos h]
  exact hf _ _ (Classical.choose_spec h).1 hx (Classical.choose_spec h).2

/-- THM-BIJECTION-INVARIANCE: with the support listed without repetition as `s : Fin n → α`, a map
one-to-one on it sends it to `n` distinct values, so |supp| (and with it b* = natPrec n) is unchanged. -/
theorem bijection_preserves_count {α β : Type} {n : Nat} (s : Fin n → α) (f : α → β)
    (hs : ∀ i j, s i = s j → i = j) (hf : InjOn f (fun x => ∃ i, s i = x)) :
    ∀ i j, f (s i) = f (s j) → i = j :=
  fun i j h => hs i j (hf _ _ ⟨i, rfl⟩ ⟨j, rfl⟩ h)

end NatPrec
