"""Preloaded by test_faults' forkserver: torch's one-time native set-up (about 1 s of kernel and thread-pool
initialisation on the first forward, backward and fused AdamW step) done once, not in every killed child.

One thread only, so that no OpenMP worker threads exist when the forkserver forks.
"""

import torch

from scaling.shapes import Shape
from scaling.training.model import GPT

torch.set_num_threads(1)
_model = GPT(Shape(n_layer=1, d_model=16, n_head=2, n_ctx=8, vocab_size=16))
_tokens = torch.zeros(2, 8, dtype=torch.long)
_model(_tokens, _tokens)[1].backward()
torch.optim.AdamW(_model.parameters(), fused=True).step()
del _model, _tokens
