"""Data-parallel training under ``torchrun``: the one place that knows about process groups.

Every ``workbench train ...`` command runs unchanged as one process or as N::

    torchrun --standalone --nproc_per_node N -m workbench.cli train cvae3d --epochs 60 ...

:func:`setup` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and, when ``WORLD_SIZE > 1``, joins the process group: ``gloo``
on CPU, ``nccl`` on CUDA (each process on ``cuda:LOCAL_RANK``). The trainers then

- wrap the model in :class:`torch.nn.parallel.DistributedDataParallel` (:meth:`Dist.wrap`), which
  averages the gradients over the processes in the backward pass;
- draw the same global batch on every rank from the same seeded generators and compute only their
  shard of it (:meth:`Dist.shard`): with B = N·b samples and a loss that is a mean over samples,
  the averaged gradient (1/N) Σ_r ∇ (1/b) Σ_{i∈shard r} ℓ_i = ∇ (1/B) Σ_i ℓ_i is the one-process
  gradient of the whole batch, so N processes follow the one-process trajectory to float rounding;
- take decisions that must agree (a wall-clock budget, a learning rate from elapsed time) on rank 0
  and broadcast them (:meth:`Dist.broadcast`), average logged numbers (:meth:`Dist.mean`);
- write checkpoints, manifests and logs on rank 0 only (:attr:`Dist.is_main`).

With ``WORLD_SIZE`` unset or 1 every method is the identity and nothing is imported beyond torch,
so the single-process path is the code path it always was. :class:`Dist` is passed down to the
network's fit loop (``workbench.nets.eels_cvae_fit.fit(dist=...)``) as a plain object: nets does
not import this module (train sits above nets).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workbench.errors import InputError


@dataclass
class Dist:
    """This process's place in the job: rank r of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: Any) -> Any:
        """``DistributedDataParallel(model)`` when distributed, else ``model`` itself."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return DDP(model, device_ids=ids)

    def check_batch(self, batch: int) -> int:
        """The per-process batch b = B / N; the global batch must split evenly."""
        if batch % self.world_size:
            raise InputError(
                f"--batch {batch} does not split over {self.world_size} processes; "
                f"use a multiple of {self.world_size}"
            )
        return batch // self.world_size

    def shard(self, batch: int) -> slice:
        """This rank's contiguous slice of a global batch of ``batch`` samples."""
        b = self.check_batch(batch)
        return slice(self.rank * b, (self.rank + 1) * b)

    def _reduce(self, values: Sequence[float], op: str) -> list[float]:
        import torch
        import torch.distributed as dist

        # float64 so that averaging logged numbers adds no rounding of its own
        dev = self.device if self.backend == "nccl" else "cpu"
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dev)
        if op == "broadcast":
            dist.broadcast(t, src=0)
        else:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            if op == "mean":
                t /= self.world_size
        return [float(v) for v in t.cpu()]

    def mean(self, values: Sequence[float]) -> list[float]:
        """Average of each value over the processes (identity with one process)."""
        return list(values) if not self.enabled else self._reduce(values, "mean")

    def sum(self, values: Sequence[float]) -> list[float]:
        return list(values) if not self.enabled else self._reduce(values, "sum")

    def broadcast(self, values: Sequence[float]) -> list[float]:
        """Rank 0's values on every rank (identity with one process)."""
        return list(values) if not self.enabled else self._reduce(values, "broadcast")

    def command(self, cmd: str) -> str:
        """The command line to record in a manifest: ``cmd`` itself for one process, with
        the torchrun launcher in front of it for several."""
        if not self.enabled:
            return cmd
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        nodes = max(1, self.world_size // max(local, 1))
        rest = cmd.removeprefix("workbench ")
        return f"torchrun --nnodes {nodes} --nproc_per_node {local} -m workbench.cli {rest}"

    def describe(self) -> dict[str, Any]:
        """For manifests: how many processes, which backend, which device per process."""
        return {"processes": self.world_size, "backend": self.backend, "device": self.device}

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def world_from_env(env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as torchrun sets them; (0, 1, 0) outside torchrun."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return rank, world, local


def setup(device: str = "auto") -> Dist:
    """Resolve ``device`` (auto | cpu | cuda) and join torchrun's process group if there is one.

    Under torchrun with CUDA each process takes ``cuda:LOCAL_RANK`` and the ``nccl`` backend;
    on CPU the ``gloo`` backend. Call :func:`teardown` (or use :func:`session`) at the end.
    """
    from workbench.device import resolve_device

    rank, world, local = world_from_env()
    dev = resolve_device(device)
    if world == 1:
        return Dist(device=dev)
    import torch
    import torch.distributed as dist

    if dev.startswith("cuda"):
        dev = f"cuda:{local}"
        torch.cuda.set_device(local)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev, backend=backend)


def teardown(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def session(device: str = "auto") -> Iterator[Dist]:
    """``with session(a.device) as d:`` — :func:`setup`, then :func:`teardown` on the way out."""
    d = setup(device)
    try:
        yield d
        # Rank 0 still validates and writes after the others are done; a rank that tears its
        # gloo group down while a peer holds the other end of it can abort at exit. So on a
        # normal exit every rank waits for the others first (an error skips this: no hang).
        d.barrier()
    finally:
        teardown(d)
