(* natprec — the finite and linear theorems of the spec, checked by Coq (coqc) in CI.
   Machine-checked: proofs_lean/checks/test_coq.py compiles this file with coqc and requires every
   theorem below to be closed under the global context (Print Assumptions). The same statements are
   written, NOT machine-checked, in Lean 4 under proofs_lean/NatPrec/Thm/. *)

Require Import Arith Lia ZArith.

(* THM-INJECTIVITY-COROLLARY (seed 001 Cor. 1): n realized values in k cells, no two sharing a cell ⇒ n ≤ k. *)
Definition remove (p v : nat) : nat := if v <? p then v else v - 1.

Lemma remove_lt : forall p v k, v < k -> p < k -> v <> p -> remove p v < k - 1.
Proof. intros p v k Hv Hp Hne. unfold remove. destruct (Nat.ltb_spec v p); lia. Qed.

Lemma remove_inj : forall p v w, v <> p -> w <> p -> remove p v = remove p w -> v = w.
Proof. intros p v w Hv Hw H. unfold remove in H. revert H.
  destruct (Nat.ltb_spec v p); destruct (Nat.ltb_spec w p); intro Heq; lia. Qed.

Theorem pigeonhole : forall n k (cell : nat -> nat),
  (forall i, i < n -> cell i < k) ->
  (forall i j, i < n -> j < n -> cell i = cell j -> i = j) -> n <= k.
Proof.
  induction n as [|n IH]; intros k cell Hlt Hinj; [lia|].
  assert (Hpk : cell n < k) by (apply Hlt; lia).
  assert (Hne : forall i, i < n -> cell i <> cell n).
  { intros i Hi H. specialize (Hinj i n ltac:(lia) ltac:(lia) H). lia. }
  assert (n <= k - 1).
  { apply (IH (k - 1) (fun i => remove (cell n) (cell i))).
    - intros i Hi. apply remove_lt; [apply Hlt; lia | exact Hpk | apply Hne; lia].
    - intros i j Hi Hj H. apply Hinj; [lia | lia |]. apply (remove_inj (cell n)); [apply Hne; lia | apply Hne; lia | exact H]. }
  lia.
Qed.

(* THM-INJECTIVITY (seed 001 Prop. 2): injective on the support iff no two distinct realized values share a cell
   (values with decidable equality, as floats have). *)
Theorem injectivity_iff : forall (A B : Type) (eq_dec : forall x y : A, {x = y} + {x <> y})
  (S : A -> Prop) (q : A -> B),
  (forall x y, S x -> S y -> q x = q y -> x = y) <->
  ~ (exists x y, S x /\ S y /\ x <> y /\ q x = q y).
Proof.
  intros A B eq_dec S q; split.
  - intros H [x [y [Hx [Hy [Hne Hq]]]]]. exact (Hne (H x y Hx Hy Hq)).
  - intros H x y Hx Hy Hq. destruct (eq_dec x y) as [E|E]; [exact E|].
    exfalso. apply H. exists x, y. auto.
Qed.

(* DEF-NATPREC (seed 001 Def. 3): b* = ⌈log2 n⌉ = Nat.log2_up n, and 2^(b*−1) < n ≤ 2^b* for n ≥ 2. *)
Theorem natprec_bounds : forall n, 2 <= n -> 2 ^ (Nat.log2_up n - 1) < n <= 2 ^ Nat.log2_up n.
Proof. intros n Hn. pose proof (Nat.log2_up_spec n ltac:(lia)) as H.
  replace (Nat.log2_up n - 1) with (Nat.pred (Nat.log2_up n)) by lia. exact H. Qed.

Theorem natprec_least : forall n b, n <= 2 ^ b -> Nat.log2_up n <= b.
Proof. intros n b H. destruct (Nat.le_gt_cases n 1) as [H1|H1].
  - rewrite Nat.log2_up_eqn0 by lia. lia.
  - apply Nat.log2_up_le_pow2; lia. Qed.

(* THM-FREE-BOUNDARY (seed 000 §4.2): k > 0 ⇒ (k · max(0, H − b) = 0 ⇔ H ≤ b). *)
Theorem free_boundary : forall k h b : Z, (0 < k)%Z -> (k * Z.max 0 (h - b) = 0 <-> h <= b)%Z.
Proof. intros k h b Hk. split; intro H.
  - destruct (Z.le_gt_cases h b) as [|Hgt]; [assumption|].
    rewrite Z.max_r in H by lia. apply Z.mul_eq_0 in H. lia.
  - rewrite Z.max_l by lia. lia. Qed.

(* THM-MARGIN-ROBUST (seed 001 Def. 6): margin > η and 2|d| ≤ η keep c strictly nearest. *)
Theorem margin_robust : forall x d c c' eta : Z,
  (Z.abs (x - c') - Z.abs (x - c) > eta)%Z -> (2 * Z.abs d <= eta)%Z ->
  (Z.abs (x + d - c) < Z.abs (x + d - c'))%Z.
Proof. intros. lia. Qed.

(* THM-DOUBLE-ROUNDING-NEVER-BETTER: the nearest codeword of C is never farther than any codeword of C,
   in particular than the C-rounding of an intermediate rounding. *)
Theorem double_rounding_never_better : forall (C M : Z -> Prop) (x q m q' : Z),
  C q -> (forall c, C c -> Z.abs (x - q) <= Z.abs (x - c))%Z ->
  M m -> C q' -> (Z.abs (x - q) <= Z.abs (x - q'))%Z.
Proof. intros C M x q m q' _ Hn _ Hq'. exact (Hn q' Hq'). Qed.

(* THM-ORDER-NOT-STRICT: a monotone Q with Q 0 = 0 commutes with ReLU. *)
Theorem order_not_strict : forall (Q : Z -> Z),
  (forall a b, (a <= b)%Z -> (Q a <= Q b)%Z) -> Q 0%Z = 0%Z ->
  forall t, Q (Z.max 0 t) = Z.max 0 (Q t).
Proof. intros Q Hm H0 t. destruct (Z.le_gt_cases t 0) as [Ht|Ht].
  - rewrite Z.max_l by lia. rewrite H0. pose proof (Hm t 0%Z Ht). lia.
  - rewrite Z.max_r by lia. pose proof (Hm 0%Z t ltac:(lia)). lia. Qed.

(* THM-QUOTIENT-MINIMAL (2), "greedy stays ahead": leaders more than τ apart along a monotone g force any
   partition into pairwise-τ-equivalent classes to have at least as many classes. *)
Theorem quotient_minimal : forall (g : nat -> Z) (l : nat -> nat) (m k : nat) (tau : Z) (cls : nat -> nat),
  (forall i j, i <= j -> j < m -> (g (l i) <= g (l j))%Z) ->
  (forall j, j + 1 < m -> (g (l (j + 1)%nat) - g (l j) > tau)%Z) ->
  (forall j, j < m -> cls (l j) < k) ->
  (forall a b, cls a = cls b -> (Z.abs (g a - g b) <= tau)%Z) -> m <= k.
Proof.
  intros g l m k tau cls Hmono Hsep Hcls Hpair.
  apply (pigeonhole m k (fun j => cls (l j))); [exact Hcls|].
  intros i j Hi Hj H. pose proof (Hpair (l i) (l j) H) as Hab.
  destruct (Nat.lt_trichotomy i j) as [Hij|[Hij|Hij]]; [|exact Hij|].
  - pose proof (Hmono (i + 1) j ltac:(lia) Hj). pose proof (Hsep i ltac:(lia)). lia.
  - pose proof (Hmono (j + 1) i ltac:(lia) Hi). pose proof (Hsep j ltac:(lia)). lia.
Qed.

Print Assumptions pigeonhole.
Print Assumptions natprec_bounds.
Print Assumptions natprec_least.
Print Assumptions free_boundary.
Print Assumptions margin_robust.
Print Assumptions double_rounding_never_better.
Print Assumptions order_not_strict.
Print Assumptions quotient_minimal.
Print Assumptions injectivity_iff.
