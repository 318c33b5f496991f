"""Training backends: the per-pixel training loop, batched.

``dispatch`` chooses a backend and runs it (``train_pixels``); ``backend`` declares the
interface every backend implements. One module per backend, none importing another or the
dispatcher: ``c_cpu`` (the fused C kernel, source ``fused_cpu.c``), ``triton_gpu`` (the fused
Triton kernel, source ``triton_source``), ``torch_batched`` (batched torch, any device),
``reference`` (per-pixel autograd, what the others are tested against). Also
``quadratic_cosine`` (Liu's one-dimensional control, trained in numpy) and ``agreement``
(when two kernels' results agree). This ``__init__`` imports nothing, so that the numpy
modules here load without torch.
"""
