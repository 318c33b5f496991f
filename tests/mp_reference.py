"""An mpmath reference of the fused kernels' training, at any precision (tests of the
double-double kernel, ``tests/kernels/test_double_double.py``).

Depth 2, no biases, one shared problem, full batch: zeta = (X W0) c0 with c0 = gain / sqrt(d_in)
(gain sqrt(2) for tanh and relu, 1 for identity), a = phi(zeta), f = (a W1) c1 with c1 = 1 / H,
loss = mean (f - Y)^2 over rows and outputs; gradients by hand (backpropagation of that loss);
the updates of ``trainability.contract.optimizers``' docstring (gd, momentum, adam), each
pixel's learning rates and offset given exactly (a float or an (hi, lo) pair, summed exactly).
``every_step`` adds the offset to every entry of W0 before every step, ``init_only`` once.
Written from the network's definition, not from the kernels: nothing here reads their code.
"""

from __future__ import annotations

import mpmath as mp


def exact(value) -> mp.mpf:
    """A float, or an (hi, lo) pair of floats summed exactly, as an mpf of the current precision."""
    if isinstance(value, (tuple, list)):
        return mp.mpf(float(value[0])) + mp.mpf(float(value[1]))
    return mp.mpf(float(value))


def _matrix(a) -> list[list[mp.mpf]]:
    return [[mp.mpf(float(v)) for v in row] for row in a]


def losses(
    weights,
    X,
    Y,
    learning_rates,
    nonlinearity: str,
    steps: int,
    *,
    offset=None,
    offset_mode: str = "every_step",
    optimizer: str = "gd",
    hyper: dict | None = None,
    dps: int = 60,
    stop_above: float = 1e30,
) -> list[mp.mpf]:
    """Each step's loss (before that step's update) at ``dps`` digits; stops after the first loss
    that is not finite or exceeds ``stop_above``. ``learning_rates``: (lr of W0, lr of W1), each a
    float or (hi, lo); ``hyper``: beta (momentum), beta1, beta2, eps (adam), floats."""
    with mp.workdps(dps):
        W0, W1 = (_matrix(w) for w in weights)
        Xm, Ym = _matrix(X), _matrix(Y)
        d_in, H, D, N = len(W0), len(W0[0]), len(W1[0]), len(Xm)
        gain = mp.mpf(1) if nonlinearity == "identity" else mp.sqrt(2)
        c0, c1 = gain / mp.sqrt(d_in), mp.mpf(1) / H
        lr0, lr1 = (exact(v) for v in learning_rates)
        off = None if offset is None else exact(offset)
        hyper = {k: mp.mpf(float(v)) for k, v in (hyper or {}).items()}
        zeros = ([[mp.mpf(0)] * H for _ in range(d_in)], [[mp.mpf(0)] * D for _ in range(H)])
        m = [[row[:] for row in z] for z in zeros]
        v = [[row[:] for row in z] for z in zeros]
        b1 = b2 = mp.mpf(1)
        if off is not None and offset_mode == "init_only":
            W0 = [[w + off for w in row] for row in W0]
        out = []
        for _ in range(steps):
            if off is not None and offset_mode == "every_step":
                W0 = [[w + off for w in row] for row in W0]
            W0T = [list(col) for col in zip(*W0)]
            zeta = [[mp.fdot(x, W0T[h]) * c0 for h in range(H)] for x in Xm]
            if nonlinearity == "tanh":
                a = [[mp.tanh(z) for z in row] for row in zeta]
                dphi = [[1 - y * y for y in row] for row in a]
            elif nonlinearity == "relu":
                a = [[z if z > 0 else mp.mpf(0) for z in row] for row in zeta]
                dphi = [[mp.mpf(1) if z > 0 else mp.mpf(0) for z in row] for row in zeta]
            else:
                a = zeta
                dphi = [[mp.mpf(1)] * H for _ in range(N)]
            W1T = [list(col) for col in zip(*W1)]
            r = [[mp.fdot(ai, W1T[d]) * c1 - Ym[i][d] for d in range(D)] for i, ai in enumerate(a)]
            loss = mp.fsum(x * x for row in r for x in row) / (N * D)
            out.append(loss)
            if not mp.isfinite(loss) or loss > stop_above:
                break
            scale = mp.mpf(2) / (N * D)
            dl = [[x * scale for x in row] for row in r]  # dloss / df
            aT, dlT = [list(c) for c in zip(*a)], [list(c) for c in zip(*dl)]
            g1 = [[mp.fdot(aT[h], dlT[d]) * c1 for d in range(D)] for h in range(H)]
            dz = [[mp.fdot(dl[i], W1[h]) * c1 * dphi[i][h] for h in range(H)] for i in range(N)]
            XT, dzT = [list(c) for c in zip(*Xm)], [list(c) for c in zip(*dz)]
            g0 = [[mp.fdot(XT[k], dzT[h]) * c0 for h in range(H)] for k in range(d_in)]
            if optimizer == "adam":
                b1, b2 = b1 * hyper["beta1"], b2 * hyper["beta2"]
            layers = []
            for layer, (W, g, lr) in enumerate(((W0, g0, lr0), (W1, g1, lr1))):
                new = []
                for i, row in enumerate(W):
                    new_row = []
                    for j, w in enumerate(row):
                        gij = g[i][j]
                        if optimizer == "gd":
                            w = w - lr * gij
                        elif optimizer == "momentum":
                            m[layer][i][j] = hyper["beta"] * m[layer][i][j] + gij
                            w = w - lr * m[layer][i][j]
                        elif optimizer == "adam":
                            m[layer][i][j] = hyper["beta1"] * m[layer][i][j] + (1 - hyper["beta1"]) * gij
                            v[layer][i][j] = hyper["beta2"] * v[layer][i][j] + (1 - hyper["beta2"]) * gij**2
                            s, rb = lr / (1 - b1), 1 / mp.sqrt(1 - b2)
                            w = w - s * (m[layer][i][j] / (mp.sqrt(v[layer][i][j]) * rb + hyper["eps"]))
                        else:
                            raise ValueError(f"unknown optimizer {optimizer!r}")
                        new_row.append(w)
                    new.append(new_row)
                layers.append(new)
            W0, W1 = layers
        return out
