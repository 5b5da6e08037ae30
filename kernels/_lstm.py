"""A small LSTM regressor in JAX, trained with optax's Adam, with a plain-numpy twin of its forward pass.

The model reads, for each of ``B`` dates, a sequence of ``L`` daily feature vectors ``seq [B, L, F]`` and,
for each of ``P`` items of that date (the pairs of assets, say), the item's own features
``pair [B, P, Q]``::

    i_u = sigma(x_u W_i + h_{u-1} U_i + b_i)      f_u = sigma(x_u W_f + h_{u-1} U_f + b_f)
    g_u = tanh(x_u W_g + h_{u-1} U_g + b_g)       o_u = sigma(x_u W_o + h_{u-1} U_o + b_o)
    c_u = f_u * c_{u-1} + i_u * g_u               h_u = o_u * tanh(c_u),     h_0 = c_0 = 0

(the LSTM of [HS97] with the forget gate of [GSC00]); the last state ``h_L`` of date ``b``, with that
date's last input ``x_L`` and item ``p``'s own features, goes through one hidden layer, with a linear term
in ``a_bp = [x_L(b), pair_bp]`` beside it (a skip connection: the model contains linear regression on
the last day's features)::

    y_bp = w2 . tanh([h_L(b), a_bp] W1 + b1) + b2 + a_bp . v

Training minimises the mean squared error over all dates and items, full batch, with Adam and decoupled
weight decay ([KB15], [LH19]; ``optax.adamw``) for a fixed number of epochs from weights drawn from a
fixed JAX key.  The same inputs give the same numbers in any process set up alike (the same XLA flags),
whatever the number of threads XLA computes on: the full-batch gradient is summed over blocks of
:data:`CHUNK` dates in a fixed order (a sequential ``lax.scan``), since XLA's CPU backend splits a long
sum over its threads, and so rounds it differently, in a process with more threads (a Ray worker has
one).  Everything runs in float64 on the CPU (JAX's 64-bit mode is turned on for the duration of the call
when the process has not turned it on).

References
----------
.. [HS97] S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation 9 (1997)
   1735-1780.
.. [GSC00] F. Gers, J. Schmidhuber and F. Cummins, "Learning to forget: continual prediction with
   LSTM", Neural Computation 12 (2000) 2451-2471 (the forget gate; its bias starts at 1).
.. [KB15] D. Kingma and J. Ba, "Adam: a method for stochastic optimization", ICLR (2015).
.. [LH19] I. Loshchilov and F. Hutter, "Decoupled weight decay regularization", ICLR (2019).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHUNK", "LSTMParams", "lstm_init", "lstm_predict", "lstm_predict_numpy", "fit_lstm"]


#: dates per block of the gradient sum (see the module docstring)
CHUNK = 8


class LSTMParams(NamedTuple):
    """Weights of :func:`lstm_predict` (``F`` sequence features, ``Q`` item features, ``H`` hidden units,
    ``D`` head units); gates in the order input, forget, cell, output."""

    wx: np.ndarray  # [F, 4H]
    wh: np.ndarray  # [H, 4H]
    b: np.ndarray  # [4H]
    w1: np.ndarray  # [H + F + Q, D]
    b1: np.ndarray  # [D]
    w2: np.ndarray  # [D]
    b2: np.ndarray  # []
    v: np.ndarray  # [F + Q]


class _on_cpu:
    """JAX's float64 mode and the CPU as the default device, for the duration of a call."""

    def __enter__(self):
        ctx = getattr(jax, "enable_x64", None)
        if ctx is None:  # older JAX
            from jax.experimental import enable_x64 as ctx
        self._ctx = [ctx(True), jax.default_device(jax.devices("cpu")[0])]
        for c in self._ctx:
            c.__enter__()
        return self

    def __exit__(self, *exc):
        for c in reversed(self._ctx):
            c.__exit__(*exc)
        return False


def lstm_init(key, n_seq: int, n_pair: int, hidden: int, head: int) -> LSTMParams:
    """Weights drawn uniform on ``+-1/sqrt(fan_in)`` from ``key``; biases 0 but the forget gate's, 1 [GSC00];
    the linear term ``v`` starts at 0."""
    k = jax.random.split(key, 4)

    def u(key, shape, fan_in):
        a = 1.0 / np.sqrt(fan_in)
        return jax.random.uniform(key, shape, jnp.float64, -a, a)

    H = hidden
    n_in = H + n_seq + n_pair
    return LSTMParams(
        wx=u(k[0], (n_seq, 4 * H), max(n_seq, 1)),
        wh=u(k[1], (H, 4 * H), H),
        b=jnp.zeros(4 * H, jnp.float64).at[H:2 * H].set(1.0),
        w1=u(k[2], (n_in, head), n_in),
        b1=jnp.zeros(head, jnp.float64),
        w2=u(k[3], (head,), head),
        b2=jnp.zeros((), jnp.float64),
        v=jnp.zeros(n_seq + n_pair, jnp.float64),
    )


def _last_state(params: LSTMParams, seq):
    """``h_L [B, H]`` of ``seq [B, L, F]``."""
    H = params.wh.shape[0]

    def cell(carry, x_u):
        h, c = carry
        z = x_u @ params.wx + h @ params.wh + params.b
        i = jax.nn.sigmoid(z[:, :H])
        f = jax.nn.sigmoid(z[:, H:2 * H])
        g = jnp.tanh(z[:, 2 * H:3 * H])
        o = jax.nn.sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        return (o * jnp.tanh(c), c), None

    zero = jnp.zeros((seq.shape[0], H), seq.dtype)
    (h, _), _ = jax.lax.scan(cell, (zero, zero), jnp.swapaxes(seq, 0, 1))
    return h


def _predict(params: LSTMParams, seq, pair):
    B, P, _ = pair.shape
    h = _last_state(params, seq)
    a = jnp.concatenate([jnp.broadcast_to(seq[:, -1][:, None, :], (B, P, seq.shape[2])), pair], axis=2)
    z = jnp.tanh(jnp.concatenate([jnp.broadcast_to(h[:, None, :], (B, P, h.shape[1])), a], axis=2) @ params.w1
                 + params.b1)
    return z @ params.w2 + params.b2 + a @ params.v


def _check(seq, pair) -> tuple[np.ndarray, np.ndarray]:
    seq = np.asarray(seq, dtype=np.float64)
    pair = np.asarray(pair, dtype=np.float64)
    if seq.ndim != 3 or pair.ndim != 3 or len(seq) != len(pair):
        raise ValueError(f"lstm: expected seq [B, L, F] and pair [B, P, Q] with the same B, got {seq.shape} and {pair.shape}")
    return seq, pair


def lstm_predict(params: LSTMParams, seq: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """``y [B, P]`` of the module's model for ``seq [B, L, F]`` and ``pair [B, P, Q]``, in float64 on the CPU."""
    seq, pair = _check(seq, pair)
    with _on_cpu():
        p = LSTMParams(*(jnp.asarray(np.asarray(a, dtype=np.float64)) for a in params))
        return np.asarray(_jit("predict")(p, jnp.asarray(seq), jnp.asarray(pair)), dtype=float)


def lstm_predict_numpy(params: LSTMParams, seq: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Plain-numpy twin of :func:`lstm_predict` (a loop over the sequence, the module's equations)."""
    p = LSTMParams(*(np.asarray(a, dtype=float) for a in params))
    seq, pair = _check(seq, pair)
    B, L, _ = seq.shape
    H = p.wh.shape[0]

    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    h = np.zeros((B, H))
    c = np.zeros((B, H))
    for u in range(L):
        z = seq[:, u] @ p.wx + h @ p.wh + p.b
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
    out = np.empty(pair.shape[:2])
    for j in range(pair.shape[1]):
        a = np.concatenate([seq[:, -1], pair[:, j]], axis=1)
        z = np.tanh(np.concatenate([h, a], axis=1) @ p.w1 + p.b1)
        out[:, j] = z @ p.w2 + p.b2 + a @ p.v
    return out


_JIT: dict = {}


def _train(params, seq, pair, y, w, epochs, learning_rate, weight_decay):
    """``epochs`` full-batch AdamW steps; the loss ``sum w (y_hat - y)^2`` and its gradient summed over
    blocks of :data:`CHUNK` dates in order."""
    import optax

    opt = optax.adamw(learning_rate, weight_decay=weight_decay)
    blocks = seq.shape[0] // CHUNK
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)

    def value_and_grad(p):
        def block(acc, k):
            def loss(q):
                sl = [jax.lax.dynamic_slice_in_dim(a, k * CHUNK, CHUNK, 0) for a in (seq, pair, y, w)]
                r = _predict(q, sl[0], sl[1]) - sl[2]
                return jnp.sum(sl[3] * r * r)

            value, g = jax.value_and_grad(loss)(p)
            return (acc[0] + value, jax.tree_util.tree_map(jnp.add, acc[1], g)), None

        (value, g), _ = jax.lax.scan(block, (jnp.zeros((), y.dtype), zeros), jnp.arange(blocks))
        return value, g

    def epoch(_, state):
        p, s, _ = state
        value, g = value_and_grad(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, value

    p, _, last = jax.lax.fori_loop(0, epochs, epoch, (params, opt.init(params), jnp.zeros((), y.dtype)))
    return p, last


def _jit(name: str):
    if name not in _JIT:
        _JIT["predict"] = jax.jit(_predict)
        _JIT["train"] = jax.jit(_train, static_argnames=("epochs", "learning_rate", "weight_decay"))
        # one program for the initial weights (op by op, each of its draws compiled a program of its own)
        _JIT["init"] = jax.jit(lstm_init, static_argnums=(1, 2, 3, 4))
    return _JIT[name]


def fit_lstm(seq: np.ndarray, pair: np.ndarray, y: np.ndarray, hidden: int = 16, head: int = 16, epochs: int = 50,
             learning_rate: float = 0.01, weight_decay: float = 1e-4, seed: int = 0) -> tuple[LSTMParams, float]:
    """Train the module's model on ``seq [B, L, F]``, ``pair [B, P, Q]`` and targets ``y [B, P]``.

    Full-batch ``optax.adamw`` for ``epochs`` steps from :func:`lstm_init` with ``jax.random.PRNGKey(seed)``,
    minimising the mean squared error; inputs are used as given (standardise them first).  Dates are padded
    with zero-weight rows to a multiple of :data:`CHUNK`.

    Returns
    -------
    params : :class:`LSTMParams` of numpy float64 arrays
    loss : the mean squared error at the last epoch (before its update)
    """
    seq, pair = _check(seq, pair)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != pair.shape[:2]:
        raise ValueError(f"lstm: expected targets y [B, P] = {pair.shape[:2]}, got {y.shape}")
    B = len(seq)
    pad = -B % CHUNK
    w = np.full(y.shape, 1.0 / y.size)
    if pad:
        seq, pair, y, w = (np.concatenate([a, np.zeros((pad,) + a.shape[1:])]) for a in (seq, pair, y, w))
    with _on_cpu():
        params = _jit("init")(jax.random.PRNGKey(int(seed)), seq.shape[2], pair.shape[2], int(hidden), int(head))
        p, last = _jit("train")(params, *(jnp.asarray(a) for a in (seq, pair, y, w)), epochs=int(epochs),
                                learning_rate=float(learning_rate), weight_decay=float(weight_decay))
        return LSTMParams(*(np.asarray(a, dtype=float) for a in p)), float(last)
