#!/usr/bin/env python3
"""gen_gelu_coeffs.py: the constants of the reference's vector GELU (ref/model/ref_ops.c, gelu_v).

GELU(x) = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, computed in double with z = |x| / sqrt 2:
  - z < 1:   erf(z) = z * sum_n c_n z^(2n), the Taylor series of erf(z) / z cut after n = 17
             (the next term is below 4e-18);
  - z >= 1:  erfc(z) = exp(-z^2) / z * h(u), u = 1 / z^2, h(u) = z exp(z^2) erfc(z), a smooth function
             of u, interpolated at Chebyshev nodes (40-digit mpmath) by a degree-18 polynomial in
             s = (2u - a - b) / (b - a) on two pieces: z in [1, 2] (u in [1/4, 1]) and z in [2, 10.5]
             (u in [1/110.25, 1/4]); above 10.5, Phi is 0 or 1 to far below a float.
Prints the C tables and the largest relative error of each piece evaluated in double by Horner's
rule against mpmath. Needs mpmath (in golden/.venv).  usage: python3 gen_gelu_coeffs.py
"""
import mpmath as mp

mp.mp.dps = 40
DEG = 18


def h(u):
    z = 1 / mp.sqrt(u)
    return z * mp.exp(z * z) * mp.erfc(z)


def chebyshev_fit(a, b, deg):
    n = deg + 1
    nodes = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n) for k in range(n)]
    vand = mp.matrix([[((2 * u - a - b) / (b - a)) ** j for j in range(n)] for u in nodes])
    c = mp.lu_solve(vand, mp.matrix([h(u) for u in nodes]))
    return [float(c[j]) for j in range(n)]


def horner(coef, s):
    p = 0.0
    for c in reversed(coef):
        p = p * s + c
    return p


def piece_error(coef, a, b, samples=4000):
    worst = 0.0
    fa, fb = float(a), float(b)
    for i in range(samples + 1):
        u = fa + (fb - fa) * i / samples
        s = u * (2.0 / (fb - fa)) - (fa + fb) / (fb - fa)
        exact = h(mp.mpf(u))
        worst = max(worst, abs(horner(coef, s) - float(exact)) / float(exact))
    return worst


def table(name, values):
    body = ",\n".join("    %.17g" % v for v in values)
    return "static const double %s[%d] = {\n%s};" % (name, len(values), body)


def main():
    taylor = [float(2 / mp.sqrt(mp.pi) * (-1) ** n / (mp.factorial(n) * (2 * n + 1))) for n in range(18)]
    pieces = [("gelu_h_near", mp.mpf(1) / 4, mp.mpf(1)), ("gelu_h_far", 1 / mp.mpf("110.25"), mp.mpf(1) / 4)]
    print(table("gelu_erf_taylor", taylor))
    for name, a, b in pieces:
        coef = chebyshev_fit(a, b, DEG)
        print("/* u in [%.17g, %.17g]: max relative error %.2e */" % (a, b, piece_error(coef, a, b)))
        print(table(name, coef))


if __name__ == "__main__":
    main()
