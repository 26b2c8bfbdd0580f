/-!
# DEF-NATPREC — natural precision b* = ⌈log2 |supp|⌉ (spec/01-support.md)

NOT MACHINE-CHECKED: written for core Lean 4 without a Lean toolchain to build it
(proofs_lean/README.md).

`natPrec n` searches b = 0, 1, 2, … for the first b with n ≤ 2^b. The reference computes the same
number as `(n - 1).bit_length()`; `proofs_lean/checks/test_exhaustive.py` compares the two.
-/

namespace NatPrec

/-- The first `b' ≥ b` (trying at most `fuel` steps) with `n ≤ 2 ^ b'`. -/
def clog2Aux (n : Nat) : Nat → Nat → Nat
  | b, 0 => b
  | b, fuel + 1 => if n ≤ 2 ^ b then b else clog2Aux n (b + 1) fuel

/-- DEF-NATPREC: b*(n) = ⌈log2 n⌉ for a support of `n` values (0 for n ≤ 1). -/
def natPrec (n : Nat) : Nat := clog2Aux n 0 n

end NatPrec
