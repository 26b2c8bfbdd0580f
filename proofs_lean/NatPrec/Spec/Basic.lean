/-!
# Definitions shared by the theorems (spec/01–04, spec/06, spec/08)

NOT MACHINE-CHECKED: written for core Lean 4 (no Mathlib) without a Lean toolchain to build it
(proofs_lean/README.md). The checks CI runs for the same statements are in proofs_lean/checks/.

Real numbers are not in core Lean, so the order-theoretic statements (margins, rounding, the
free boundary) are stated over ℤ. Every statement there is homogeneous and linear, so an
instance with rational data is the integer instance after multiplying by a common denominator.
-/

namespace NatPrec

/-- DEF-SUPPORT-VALUE (as used by seed 001 Def. 4): `f` is one-to-one on the realized support `S`. -/
def InjOn {α β : Type} (f : α → β) (S : α → Prop) : Prop :=
  ∀ x y, S x → S y → f x = f y → x = y

/-- Absolute value on ℤ, written out so that every proof can split on its sign. -/
def iabs (v : Int) : Int := if 0 ≤ v then v else -v

/-- DEF-QUANTIZE: `q` is a nearest codeword of `x` in the codebook `C` (any tie rule picks one of these). -/
def IsNearest (C : Int → Prop) (x q : Int) : Prop :=
  C q ∧ ∀ c, C c → iabs (x - q) ≤ iabs (x - c)

/-- DEF-MARGIN: the margin of `x` between its codeword `c` and another codeword `c'`. -/
def margin (x c c' : Int) : Int := iabs (x - c') - iabs (x - c)

/-- The positive part max(0, v). -/
def posPart (v : Int) : Int := if 0 < v then v else 0

/-- DEF-BOUNDARY-COST (seed 000 §4.2): C = k · max(0, H_source − b_target), with k = kT ln 2 > 0. -/
def boundaryCost (k hSource bTarget : Int) : Int := k * posPart (hSource - bTarget)

end NatPrec
