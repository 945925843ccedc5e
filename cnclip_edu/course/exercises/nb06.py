"""Exercises of notebook 06 (training under torchrun): the learning-rate schedule, one training step,
and the smallest DDP program. Each is compared with the library on fixed inputs, and each part registers
its own when imported:

- nb06_schedule.py: linear warmup + cosine decay (06.1);
- nb06_step.py: one training step, the temperature clamped (06.2);
- nb06_loop.py: the single-process training loop (06.3; loop_cases.py builds its cases);
- nb06_hello.py: hello, rank: init_process_group + DistributedSampler + all_reduce (06.4);
- nb06_ddp.py: the DDP worker, saving on rank 0 only (06.5);
- nb06_finetune.py: the start of a finetune (06.8);
- nb06_resume.py: an atomic checkpoint save and an exact resume (06.6, 06.7; resume_cases.py runs them).

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb06_ddp, nb06_finetune, nb06_hello, nb06_loop, nb06_resume, nb06_schedule, nb06_step  # noqa: F401  (importing registers)
