"""Blockwise log-domain kernels: every O(nm) pass of the OT solvers, one row block at a time.

With dimensionless potentials ``alpha = eta x``, ``beta = eta y`` the plan is

    log P_ij = alpha_i + beta_j - eta C_ij - 1.

Each method below sweeps the rows of C in blocks of about ``block_entries`` entries (the cost
comes from a :class:`workbench.physics.ot.cost.GroundCost`, dense or computed from points), so a
pass holds a few block-sized temporaries and never a second n x m array. Potentials and all
reductions are float64; the block arithmetic runs in the cost's dtype (float64 by default;
float32 halves memory traffic but limits the reachable marginal error to about
``eta * 6e-8`` relative per entry). ``passes`` counts the full sweeps (the O(nm) work).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: exp() of arguments below this is replaced by exp(FLOOR): harmless in every sum and it keeps
#: exp on its fast path (underflowing arguments are ~5x slower on x86).
FLOOR = -700.0
FLOOR32 = -87.0  # exp(-87) is still a normal float32


#: size of the strided sample from which :func:`sample_threshold` estimates the k-th largest entry
SAMPLE = 1 << 14


def sample_threshold(flat: Any, k: int) -> float | None:
    """A value that probably has between k and about 1.2 k + O(sqrt k) entries of ``flat`` above it.

    The ``r``-th largest of a strided sample of ``SAMPLE`` entries, with ``r`` the sample's
    expected count above the k-th largest entry plus three standard deviations (binomial), so
    that the threshold lies below the true k-th value with high probability. The stride is made
    odd (the flat index of a row block is ``i m + j``: an even stride with an even ``m`` would
    sample half the columns only). Deterministic; the caller checks the count and falls back to
    an exact top-k, so the selection never depends on the sample being representative.
    Returns None when the array is too small for sampling to pay.
    """
    import torch

    N = flat.numel()
    stride = N // SAMPLE
    if stride < 8 or k >= N // 2:
        return None
    stride |= 1
    sample = flat[::stride]
    ns = sample.numel()
    mean = k / N * ns
    r = int(mean + 3.0 * math.sqrt(mean) + 8)
    if r >= ns:
        return None
    return float(torch.topk(sample, r, sorted=False).values.min())


def above(flat: Any, t: float, strict: bool = False) -> Any:
    """Indices (int64 tensor) of the entries of the 1-D tensor ``flat`` that are >= t (> t).

    On the CPU through NumPy's ``flatnonzero`` on the shared memory: 4-5x faster than
    ``torch.nonzero`` of the comparison (0.11 ms against 0.5 ms for 250 000 entries, one core),
    and this compare is the selection's main cost.
    """
    import torch

    if flat.device.type == "cpu":
        x = flat.numpy()
        return torch.from_numpy(np.flatnonzero(x > t if strict else x >= t))
    return torch.nonzero(flat > t if strict else flat >= t).reshape(-1)


class LogKernel:
    """The O(nm) operations of Sinkhorn and SNS on a cost served in row blocks.

    Parameters
    ----------
    cost : GroundCost
        Normalised costs, shape (n, m).
    a, b : torch.Tensor, float64, shapes (n,), (m,)
        Positive marginals.
    eta : float
        Inverse regularisation (may be changed between stages).
    block_entries : int
        Target entries per block (rows per block = block_entries // m, at least 1).
    """

    def __init__(self, cost: Any, a: Any, b: Any, eta: float, block_entries: int = 1 << 20):
        import torch

        self.cost = cost
        self.a, self.b = a, b
        self.la, self.lb = torch.log(a), torch.log(b)
        self.eta = float(eta)
        self.n, self.m = cost.n, cost.m
        self.rows_per_block = max(1, int(block_entries) // max(1, self.m))
        self.passes = 0
        self.repeats = 0  # selecting passes repeated with the exact merge (see _threshold)
        self.last_rows = None
        self._bufs: dict[int, Any] = {}
        self.floor = FLOOR if cost.dtype == torch.float64 else FLOOR32

    # -- helpers ---------------------------------------------------------------------------
    def _ranges(self):
        for i0 in range(0, self.n, self.rows_per_block):
            yield i0, min(self.n, i0 + self.rows_per_block)

    def _buffer(self, slot: int, rows: int) -> Any:
        """A persistent (rows, m) work buffer: the passes allocate nothing per block."""
        import torch

        buf = self._bufs.get(slot)
        if buf is None:
            r = min(self.rows_per_block, self.n)
            buf = torch.empty((r, self.m), dtype=self.cost.dtype, device=self.cost.device)
            self._bufs[slot] = buf
        return buf[:rows]

    def _logp(self, i0: int, i1: int, alpha: Any, beta: Any, minus_one: bool = True) -> Any:
        """alpha_i + beta_j - eta C_ij (- 1) for rows i0:i1, in work buffer 0 (None: zero)."""
        row = None if alpha is None else alpha[i0:i1]
        if minus_one:
            row = row - 1.0 if row is not None else self.a.new_full((i1 - i0,), -1.0)
        return self.cost.logp_block(i0, i1, -self.eta, row, beta, self._buffer(0, i1 - i0))

    def _plan_block(self, i0: int, i1: int, alpha: Any, beta: Any) -> Any:
        """Rows ``i0:i1`` of the plan ``P = exp(max(log P, floor))`` in a reused buffer."""
        W = self._logp(i0, i1, alpha, beta)
        W.clamp_(min=self.floor)
        return W.exp_()

    # -- Sinkhorn --------------------------------------------------------------------------
    def _safe(self, sums: Any) -> bool:
        """Whether marginal sums taken without a max-shift are usable: finite, and far enough
        above the floor's contribution (``exp(floor)`` per entry) to be exact."""
        import torch

        tiny = max(self.n, self.m) * math.exp(self.floor) * 1e10
        return bool(torch.isfinite(sums).all()) and bool((sums > tiny).all())

    def row_update(self, beta: Any, alpha: Any = None) -> Any:
        """alpha with exact row sums: alpha_i = log a_i + 1 - log sum_j exp(beta_j - eta C_ij).

        With the current ``alpha`` given, the log-sum-exp is shifted by it instead of by each
        row's maximum: ``alpha_i + log a_i - log r_i`` with ``r = P(alpha, beta) 1``, so the pass
        needs no max reduction and also yields ``r``, the current plan's row sums (kept in
        :attr:`last_rows`: the marginal error of the current state without a pass of its own).
        Safe whenever no plan entry overflows and no row sum underflows, as after any column
        update (entries <= b_j); otherwise the max-shifted pass is taken.
        """
        import torch

        if alpha is not None:
            rows = torch.empty_like(self.a)
            for i0, i1 in self._ranges():
                W = self._plan_block(i0, i1, alpha, beta)
                rows[i0:i1] = W.sum(dim=1, dtype=torch.float64)
            self.passes += 1
            if self._safe(rows):
                self.last_rows = rows
                return alpha + self.la - torch.log(rows)
        self.last_rows = None
        out = torch.empty_like(self.a)
        for i0, i1 in self._ranges():
            W = self._logp(i0, i1, None, beta, minus_one=False)
            mx = W.amax(dim=1, keepdim=True)
            W -= mx
            W.clamp_(min=self.floor)
            W.exp_()
            out[i0:i1] = W.sum(dim=1, dtype=torch.float64).log_() + mx[:, 0].double()
        self.passes += 1
        return self.la + 1.0 - out

    def col_update(self, alpha: Any, beta: Any = None) -> Any:
        """beta with exact column sums, by a streaming column log-sum-exp over the row blocks.

        With the current ``beta`` given, shifted by it (as :meth:`row_update`): no running
        maximum, one pass; the max-shifted pass only when those sums are unsafe.
        """
        import torch

        if beta is not None:
            cols = torch.zeros_like(self.b)
            for i0, i1 in self._ranges():
                W = self._plan_block(i0, i1, alpha, beta)
                cols += W.sum(dim=0, dtype=torch.float64)
            self.passes += 1
            if self._safe(cols):
                return beta + self.lb - torch.log(cols)
        M = torch.full_like(self.b, -math.inf)
        S = torch.zeros_like(self.b)
        for i0, i1 in self._ranges():
            W = self._logp(i0, i1, alpha, None, minus_one=False)
            bm = W.amax(dim=0).double()
            newM = torch.maximum(M, bm)
            S *= torch.exp(M - newM)
            W -= newM[None, :].to(W.dtype)
            W.clamp_(min=self.floor)
            W.exp_()
            S += W.sum(dim=0, dtype=torch.float64)
            M = newM
        self.passes += 1
        return self.lb + 1.0 - (torch.log(S) + M)

    def sweep_state(self, alpha: Any, beta: Any, rows: Any) -> dict[str, Any]:
        """The state after a column update from the next row update's sums, without a pass.

        The columns of ``P(alpha, beta)`` equal ``b`` by construction of the column update (to
        rounding, ~1e-16 relative), so ``e = ||rows - a||_1`` and ``f`` follow from ``rows``.
        """
        e = float((rows - self.a).abs().sum())
        f = float(-rows.sum() + self.a @ alpha + self.b @ beta)
        return {"rows": rows, "cols": self.b.clone(), "e": e, "f": f}

    # -- state and selection ---------------------------------------------------------------
    def _reducer(self, k: int, hint: float, exact: bool = False) -> dict[str, Any]:
        import torch

        return {
            "rows": torch.empty_like(self.a),
            "cols": torch.zeros_like(self.b),
            "vals": None,
            "idx": None,
            "tau": -math.inf,
            "k": k,
            "hint": hint,
            # several blocks: one threshold for all of them and buffered merges (see _threshold)
            "global": k > 0 and not exact and self.n > self.rows_per_block,
            "t": None,
            "buf": [],
            "count": 0,
        }

    def _threshold(self, flat: Any, i0: int, acc: dict[str, Any]) -> None:
        """Top-k candidates of one block of many, against one threshold for the whole pass.

        The per-block merge of :meth:`_reduce` sorts ``k + candidates`` entries after every
        block; with k in the millions (10 000-point clouds: 2.5e6 kept entries, ~100 blocks)
        that is seconds per pass. Here the threshold ``t`` is fixed at the first block (the
        lower of the caller's hint and the strided-sample threshold of twice the block's share
        of k), every
        block contributes the entries ``>= t`` to a buffer, and the buffer is cut to its top k
        (raising ``t`` to its k-th value) only when it exceeds 2 k: O(entries) compares and
        O(candidates) sorting per pass. Fewer than k candidates in all (a first block
        unrepresentative of the rest) is reported by :meth:`_finish`, and the caller repeats the
        pass with the exact merge.
        """

        k = acc["k"]
        if acc["t"] is None:
            share = math.ceil(2.0 * k * flat.numel() / (self.n * self.m)) + 64
            t = sample_threshold(flat, min(share, flat.numel()))
            if t is not None and acc["hint"] > 0.0:
                t = min(t, acc["hint"])  # the lower of the two: a repeated pass costs more
            acc["t"] = -math.inf if t is None else t
        cand = above(flat, acc["t"])
        acc["buf"].append((flat[cand], cand + i0 * self.m))
        acc["count"] += cand.numel()
        if acc["count"] > 2 * k:
            vals, idx = self._cut(acc["buf"], k)
            acc["buf"], acc["count"] = [(vals, idx)], k
            acc["t"] = max(acc["t"], float(vals.min()))

    @staticmethod
    def _cut(buf: list, k: int) -> tuple[Any, Any]:
        import torch

        vals = torch.cat([v for v, _ in buf])
        idx = torch.cat([j for _, j in buf])
        buf.clear()  # the pieces now live in vals/idx: free them before top-k's own copies
        if vals.numel() > k:
            vals, j = torch.topk(vals, k, sorted=False)
            idx = idx[j]
        return vals, idx

    def _reduce(self, W: Any, i0: int, i1: int, acc: dict[str, Any]) -> None:
        """Accumulate the row and column sums of the plan block ``W`` and its top-k candidates.

        The global top-k is merged block by block with a running threshold ``tau`` (the current
        k-th value), so that only candidates above it are sorted.
        """
        import torch

        acc["rows"][i0:i1] = W.sum(dim=1, dtype=torch.float64)
        acc["cols"] += W.sum(dim=0, dtype=torch.float64)
        k = acc["k"]
        if k <= 0:
            return
        if acc["global"]:
            self._threshold(W.reshape(-1), i0, acc)
            return
        vals, idx, tau, hint = acc["vals"], acc["idx"], acc["tau"], acc["hint"]
        flat = W.reshape(-1)
        if vals is not None and vals.numel() >= k:
            cand = above(flat, tau, strict=True)
            cv = flat[cand]
        else:
            kk = min(k, flat.numel())
            cand = None
            if hint > 0.0:
                # The previous selection's k-th value, lowered: one compare finds a
                # superset of the top-k far cheaper than a top-k over every entry.
                cand = above(flat, hint, strict=True)
                if cand.numel() < kk:
                    cand = None
            if cand is None or cand.numel() > 4 * kk:
                # No hint, or a loose one: a threshold from a strided sample gives
                # a superset of about 1.2 k entries (a top-k over every entry costs
                # ~10 ns each, a compare ~1 ns). Too few above it: the full top-k.
                t = sample_threshold(flat, kk)
                if t is not None:
                    c2 = above(flat, t)
                    if c2.numel() >= kk:
                        cand = c2
            if cand is None:
                cv, cand = torch.topk(flat, kk, sorted=False)
            else:
                cv, j = torch.topk(flat[cand], kk, sorted=False)
                cand = cand[j]
        cand = cand + i0 * self.m
        if vals is None:
            vals, idx = cv, cand
        else:
            vals, idx = torch.cat([vals, cv]), torch.cat([idx, cand])
        if vals.numel() > k:
            vals, j = torch.topk(vals, k, sorted=False)
            idx = idx[j]
        if vals.numel() >= k:
            acc["tau"] = float(vals.min())
        acc["vals"], acc["idx"] = vals, idx

    def _finish(self, acc: dict[str, Any], alpha: Any, beta: Any) -> dict[str, Any] | None:
        """The state dict of a finished pass; None when the one-threshold selection found
        fewer than k candidates (the caller repeats the pass with the exact merge)."""
        if acc["global"]:
            if acc["count"] < min(acc["k"], self.n * self.m):
                return None
            acc["vals"], acc["idx"] = self._cut(acc["buf"], acc["k"])
        rows, cols = acc["rows"], acc["cols"]
        e = float((rows - self.a).abs().sum() + (cols - self.b).abs().sum())
        f = float(-rows.sum() + self.a @ alpha + self.b @ beta)
        out = {"rows": rows, "cols": cols, "e": e, "f": f}
        if acc["k"] > 0:
            out["vals"], out["idx"] = acc["vals"].double(), acc["idx"]
        return out

    def state(self, alpha: Any, beta: Any, k: int = 0, hint: float = 0.0) -> dict[str, Any]:
        """Marginals, L1 error, dual objective and (if ``k``) the k largest plan entries.

        Returns a dict with ``rows``, ``cols`` (float64 tensors), ``e``, ``f`` (eta * f, i.e.
        ``-sum P + <a, alpha> + <b, beta>``) and, for ``k > 0``, ``vals`` and ``idx`` (flat
        indices i * m + j, int64) of the global top-k of P, merged block by block with a running
        threshold so that only candidates above the current k-th value are sorted. ``hint`` (a
        value below the expected k-th largest entry, 0 for none) prefilters the first block; it
        never changes the result (too few candidates falls back to the full selection).
        """
        return self._state(alpha, beta, k, hint, exact=False)

    def _state(self, alpha: Any, beta: Any, k: int, hint: float, exact: bool) -> dict[str, Any]:
        acc = self._reducer(k, hint, exact)
        for i0, i1 in self._ranges():
            W = self._plan_block(i0, i1, alpha, beta)
            self._reduce(W, i0, i1, acc)
        self.passes += 1
        out = self._finish(acc, alpha, beta)
        if out is None:
            self.repeats += 1
            return self._state(alpha, beta, k, 0.0, exact=True)
        return out

    def full_step(
        self,
        alpha: Any,
        beta: Any,
        dal: Any,
        dbe: Any,
        k: int = 0,
        hint: float = 0.0,
        linear: float | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """The full step's line-search term and the state after it, in one pass.

        Returns ``(quad, state)``: ``quad = sum_ij P_ij (expm1(d_ij) - d_ij)`` exactly as
        :meth:`line_search_increase` gives it for the step ``s = 1``, and ``state`` as
        :meth:`state` gives it at ``(alpha + dal, beta + dbe)``, whose plan is
        ``P exp(d) = P + P expm1(d)``: the same block's ``expm1`` serves both, so an accepted
        full Newton step costs one sweep over the cost instead of two. (The state is discarded
        when the Armijo test rejects the step.)

        ``linear``, when given, is ``sum_ij P_ij d_ij = <P 1, dal> + <P^T 1, dbe>`` from the
        current marginals; then ``quad = sum P expm1(d) - linear`` and the block needs no
        ``expm1(d) - d`` of its own (three sweeps fewer). Rounding is the same as the
        entry-wise form's, whose ``expm1(d) - d`` also cancels the first order: an absolute
        ~1e-16 |d| per entry (float64 blocks only; float32 ones keep the entry-wise form).
        """
        import torch

        quad = 0.0
        acc = self._reducer(k, hint)
        if self.cost.dtype != torch.float64:
            linear = None
        for i0, i1 in self._ranges():
            W = self._plan_block(i0, i1, alpha, beta)
            dt = W.dtype
            D = torch.add(
                dal[i0:i1, None].to(dt), dbe[None, :].to(dt), out=self._buffer(1, i1 - i0)
            )
            E = torch.expm1(D, out=self._buffer(2, i1 - i0))
            if linear is None:
                D.neg_()
                D += E
                D *= W
                quad += float(D.sum(dtype=torch.float64))
                E *= W
            else:
                E *= W
                quad += float(E.sum(dtype=torch.float64))
            E += W
            self._reduce(E, i0, i1, acc)
        self.passes += 1
        if linear is not None:
            quad -= linear
        al, be = alpha + dal, beta + dbe
        st = self._finish(acc, al, be)
        if st is None:
            self.repeats += 1
            st = self._state(al, be, k, 0.0, exact=True)
        return quad, st

    def line_search_increase(
        self, alpha: Any, beta: Any, dal: Any, dbe: Any, steps: list[float]
    ) -> np.ndarray:
        """sum_ij P_ij (expm1(s d_ij) - s d_ij) for each step s, d_ij = dal_i + dbe_j, in one pass.

        The increase of eta f along the step is then ``s g.dz - quad(s)``, exact in floating
        point where differencing f would cancel. A trial that overflows gives inf (a failed trial).
        """
        import torch

        quad = np.zeros(len(steps))
        for i0, i1 in self._ranges():
            W = self._plan_block(i0, i1, alpha, beta)
            dt = W.dtype
            D = torch.add(
                dal[i0:i1, None].to(dt), dbe[None, :].to(dt), out=self._buffer(1, i1 - i0)
            )
            T = self._buffer(2, i1 - i0)
            inc = self._buffer(3, i1 - i0)
            for q, s in enumerate(steps):
                torch.mul(D, s, out=T)
                torch.expm1(T, out=inc)
                inc -= T
                inc *= W
                quad[q] += float(inc.sum(dtype=torch.float64))
        self.passes += 1
        return quad

    def plan_into(self, alpha: Any, beta: Any, out: np.ndarray) -> None:
        """Write P (float64) into ``out`` (n, m) block by block."""
        for i0, i1 in self._ranges():
            W = self._plan_block(i0, i1, alpha, beta)
            out[i0:i1] = W.double().cpu().numpy()
        self.passes += 1

    def plan_sparse(self, alpha: Any, beta: Any, threshold: float = 1e-15) -> tuple:
        """Entries P_ij > threshold as COO arrays (rows, cols, vals), block by block."""
        import torch

        rr, cc, vv = [], [], []
        for i0, i1 in self._ranges():
            W = self._plan_block(i0, i1, alpha, beta)
            nz = torch.nonzero(W > threshold)
            rr.append((nz[:, 0] + i0).cpu().numpy())
            cc.append(nz[:, 1].cpu().numpy())
            vv.append(W[nz[:, 0], nz[:, 1]].double().cpu().numpy())
        self.passes += 1
        return np.concatenate(rr), np.concatenate(cc), np.concatenate(vv)

    def transport_cost(self, alpha: Any, beta: Any) -> float:
        """<C, P> in normalised units, blockwise."""
        import torch

        tot = 0.0
        for i0, i1 in self._ranges():
            W = self._plan_block(i0, i1, alpha, beta)
            W *= self.cost.scaled_block(i0, i1, 1.0, self._buffer(1, i1 - i0))
            tot += float(W.sum(dtype=torch.float64))
        self.passes += 1
        return tot
