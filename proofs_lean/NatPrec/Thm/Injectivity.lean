import NatPrec.Spec.Basic

/-!
# THM-INJECTIVITY and THM-INJECTIVITY-COROLLARY (spec/03-injectivity.md; seed 001 Prop. 2, Cor. 1)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). CI checks the same statements by other means: see proofs_lean/checks/.
-/

namespace NatPrec

/-- THM-INJECTIVITY (seed 001 Prop. 2): quantization `q` is injective on the realized support `S`
if and only if no two distinct realized values share a cell (the same code). -/
theorem injectivity_iff {α β : Type} (S : α → Prop) (q : α → β) :
    InjOn q S ↔ ¬ ∃ x y, S x ∧ S y ∧ x ≠ y ∧ q x = q y :=
  ⟨fun h ⟨x, y, hx, hy, hne, hq⟩ => hne (h x y hx hy hq),
   fun h x y hx hy hq => Classical.byContradiction fun hne => h ⟨x, y, hx, hy, hne, hq⟩⟩

/-- Renumbering the cells below `k` after removing cell `p`. -/
def remove (p v : Nat) : Nat := if v < p then v else v - 1

theorem remove_lt {p v k : Nat} (hv : v < k) (hp : p < k) (hne : v ≠ p) : remove p v < k - 1 := by
  unfold remove
  split <;> omega

theorem remove_inj {p v w : Nat} (hv : v ≠ p) (hw : w ≠ p) (h : remove p v = remove p w) : v = w := by
  unfold remove at h
  split at h <;> split at h <;> omega

/-- THM-INJECTIVITY-COROLLARY (seed 001 Cor. 1, the pigeonhole principle): if the `n` realized values
(indices `i < n`) go to cells `cell i < k` and no two share a cell, then `n ≤ k`, i.e. |C| ≥ |supp|. -/
theorem pigeonhole : ∀ (n k : Nat) (cell : Nat → Nat),
    (∀ i, i < n → cell i < k) → (∀ i j, i < n → j < n → cell i = cell j → i = j) → n ≤ k
  | 0, _, _, _, _ => Nat.zero_le _
  | n + 1, k, cell, hlt, hinj => by
    have hpk : cell n < k := hlt n (Nat.lt_succ_self n)
    have hne : ∀ i, i < n → cell i ≠ cell n := by
      intro i hi h
      have := hinj i n (Nat.lt_succ_of_lt hi) (Nat.lt_succ_self n) h
      omega
    have ih := pigeonhole n (k - 1) (fun i => remove (cell n) (cell i))
      (fun i hi => remove_lt (hlt i (Nat.lt_succ_of_lt hi)) hpk (hne i hi))
      (fun i j hi hj h => hinj i j (Nat.lt_succ_of_lt hi) (Nat.lt_succ_of_lt hj)
        (remove_inj (hne i hi) (hne j hj) h))
    omega

/-- THM-INJECTIVITY-COROLLARY (seed 001 Cor. 1): "|C| ≥ |supp| and at most one realized value per cell"
is equivalent to "at most one realized value per cell": the cardinality clause is implied. -/
theorem corollary_iff (n k : Nat) (cell : Nat → Nat) (hlt : ∀ i, i < n → cell i < k) :
    (n ≤ k ∧ ∀ i j, i < n → j < n → cell i = cell j → i = j) ↔
      (∀ i j, i < n → j < n → cell i = cell j → i = j) :=
  ⟨fun h => h.2, fun h => ⟨pigeonhole n k cell hlt h, h⟩⟩

end NatPrec
