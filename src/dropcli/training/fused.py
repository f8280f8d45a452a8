"""train.engine "fused": the MLP's training step written out by hand, for speed, at any depth.

The default engine, "autograd", runs the model's modules, autograd and torch.optim: the
chapter's code. This one computes the same step (the same masks, drawn from the same generator
in the same order, the same gradients, the same update) as a short list of matrix products and
in-place passes over the activations:

- the dropout scale 1 / (1 - p) rides on the matrix products' `alpha` instead of a pass of its own;
- ReLU's and dropout's backward are one pass: a unit passes gradient exactly when it is
  positive after its mask (`threshold_backward` on the masked activations);
- with plain SGD the update is folded into the weight-gradient product, W.addmm_(dH.T, A,
  alpha=-lr * scale / batch), and the bias update into one addmv_: no gradient tensors, no
  optimizer pass, no pass for the mean's 1 / batch. Other optimizers get `.grad` and step().

With train.precision bf16 the same step runs its matrix products in bf16 (oneDNN's on a CPU with
AVX512_BF16 or AMX): the activations, the masks and the products' inputs are bf16, while the
weights stay fp32 master copies that the update (and the optimizer, and max-norm) works on; the
products read bf16 copies of them, refreshed as each step starts (so whatever moved the weights
since, max-norm included, is seen). The masks are the fp32 step's own (they are
drawn from the same generator in the same order, whatever the dtype), so a bf16 run differs from
an fp32 run only by rounding. SGD's update then cannot ride on the weight-gradient product (the
product is bf16, the weight fp32): it is one add_ of the bf16 product into the fp32 weight.

It covers the kinds whose noise is unit dropout (vocabulary.FUSED_KINDS) in one process:
config/validation.py's engine_checks refuse other kinds and torch.compile,
training/state.py's check_trainable refuses torchrun, and training/precision.py refuses bf16 where
the device has no fast bf16 products. tests/training/test_fused.py holds it to the autograd engine
and tests/training/test_bf16.py holds bf16 to fp32.
"""

import torch
import torch.nn.functional as F
from torch import nn

from dropcli.config.vocabulary import INPUT_SLOT, noise_slots
from dropcli.model.dropout import Dropout, draw_keep, survivor_scale
from dropcli.model.mlp import hidden_layers, noise_layers


class _Noise:
    """One dropout layer of the model, as the fused step draws and applies it."""

    def __init__(self, module: nn.Module | None):
        self.p, self.mask_mode, self.generator = 0.0, "bool", None
        if isinstance(module, Dropout):
            self.p, self.mask_mode, self.generator = module.p, module.mask_mode, module.generator
        elif isinstance(module, nn.Dropout):
            # On the CPU the bernoulli mode draws F.dropout's very masks. (On CUDA F.dropout has a
            # fused kernel of its own: the masks there differ, with the same distribution.)
            self.p, self.mask_mode = module.p, "bernoulli"
        elif module is not None and not isinstance(module, nn.Identity):
            raise TypeError(f"the fused engine cannot run a {type(module).__name__} noise layer")
        # The scale that rides on the next matrix product; 0 for p == 1, where all is dropped.
        self.scale = survivor_scale(self.p, torch.float32) if self.p < 1 else 0.0

    def apply_(self, A: torch.Tensor) -> None:
        """Zero the dropped units of A in place (unscaled); nothing when p == 0."""
        if self.p == 1:
            A.zero_()
        elif self.p > 0:
            A.mul_(draw_keep(A, self.p, self.mask_mode, self.generator, dtype=A.dtype))


class FusedStep:
    """`step(X, y, global_size) -> (loss, logits)`: one training step of `model`, updating it in
    place. One process only, so the batch is the whole global batch (`global_size` is len(X)).
    `precision` "bf16" runs the matrix products in bf16 (the weights stay fp32)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: str = "fp32", label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing  # train.label_smoothing
        hidden = hidden_layers(model)
        layers = [*hidden, model.output]
        if not all(type(layer) is nn.Linear for layer in layers):
            raise TypeError("the fused engine runs the MLP of plain Linear layers")
        self.weights = [layer.weight for layer in layers]  # (out, in) each; updated in place
        self.biases = [layer.bias for layer in layers]
        # The noise before each layer: on the inputs (if any), then after each hidden layer's ReLU.
        noise = noise_layers(model)
        self.noise = [_Noise(noise.get(INPUT_SLOT)), *(_Noise(noise[slot]) for slot in noise_slots(len(hidden)))]
        self.optimizer = optimizer
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        # What the products read: the fp32 weights themselves, or bf16 copies of them.
        self.product_weights, self.product_biases = self.weights, self.biases
        if self.dtype != torch.float32:
            self.product_weights = [torch.empty_like(weight, dtype=self.dtype) for weight in self.weights]
            self.product_biases = [torch.empty_like(bias, dtype=self.dtype) for bias in self.biases]
        self._ones: dict[int, torch.Tensor] = {}  # batch size -> (batch,) ones, for bias gradients as products

    @torch.no_grad()
    def __call__(self, X: torch.Tensor, y: torch.Tensor, global_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.product_weights is not self.weights:
            torch._foreach_copy_(self.product_weights, self.weights)
            torch._foreach_copy_(self.product_biases, self.biases)
        inputs = self._forward(X)  # what each layer read, masked and unscaled
        logits = inputs.pop().float()  # (batch, 10); the loss and its gradient in fp32 at any precision
        log_p = torch.log_softmax(logits, dim=1)
        smoothing = self.label_smoothing
        loss = F.nll_loss(log_p, y)
        if smoothing:  # the target: 1 - smoothing on the true class, smoothing spread over all
            loss = (1 - smoothing) * loss - smoothing * log_p.mean(dim=1).mean()
        ones = self._ones.get(len(y))
        if ones is None:
            ones = self._ones[len(y)] = logits.new_ones(len(y))
        # batch * d loss / d logits = softmax - target; the 1 / batch rides on the update.
        grad = log_p.exp_()
        if smoothing:
            grad.sub_(smoothing / logits.shape[1])
        grad.scatter_add_(1, y.unsqueeze(1), -(1 - smoothing) * ones.unsqueeze(1))
        self._backward(grad.to(self.dtype), inputs, ones)
        return loss, logits

    def _forward(self, X: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's (masked, unscaled) input, then the logits."""
        # The batch may be the caller's tensor: mask a copy (a bf16 cast is one).
        A = X.to(self.dtype) if self.dtype != X.dtype else X if self.noise[0].p == 0 else X.clone()
        outputs = []
        for index, (weight, bias, noise) in enumerate(zip(self.product_weights, self.product_biases, self.noise)):
            if index > 0:
                A = A.relu_()  # (batch, hidden)
            noise.apply_(A)
            outputs.append(A)
            A = torch.addmm(bias, A, weight.t(), alpha=noise.scale)
        outputs.append(A)
        return outputs

    def _backward(self, grad: torch.Tensor, inputs: list[torch.Tensor], ones: torch.Tensor) -> None:
        """Back from batch * d loss / d logits, updating each layer once its input's gradient is known."""
        group = self.optimizer.param_groups[0]
        plain_sgd = (
            isinstance(self.optimizer, torch.optim.SGD)
            and group["momentum"] == group["weight_decay"] == 0
            and not group.get("maximize", False)
        )
        step = -group["lr"] / len(ones)
        for index in reversed(range(len(self.weights))):
            weight, bias, A, scale = self.weights[index], self.biases[index], inputs[index], self.noise[index].scale
            grad_input = None
            if index > 0:  # the gradient at the previous layer's pre-activation, before this layer's weights change
                grad_input = torch.addmm(A, grad, self.product_weights[index], beta=0, alpha=scale)  # beta=0: A is not read
                grad_input = torch.ops.aten.threshold_backward(grad_input, A, 0)
            grad_t = grad.t()
            if self.dtype != torch.float32:
                self._update_from_bf16(index, grad_t, A, scale, step if plain_sgd else None)
            elif plain_sgd:
                weight.addmm_(grad_t, A, alpha=step * scale)
                bias.addmv_(grad_t, ones, alpha=step)
            else:
                weight.grad = torch.mm(grad_t, A).mul_(scale / len(ones))
                bias.grad = torch.mv(grad_t, ones).div_(len(ones))
            grad = grad_input
        if not plain_sgd:
            self.optimizer.step()

    def _update_from_bf16(self, index: int, grad_t: torch.Tensor, A: torch.Tensor, scale: float, step: float | None) -> None:
        """Layer `index`'s fp32 weight and bias from bf16 gradients (batch * the mean's): moved by
        `step` times them (plain SGD), or given them as .grad for the optimizer (`step` None)."""
        weight, bias, batch = self.weights[index], self.biases[index], grad_t.shape[1]
        weight_grad = torch.mm(grad_t, A)  # (out, in), bf16 products accumulated in fp32 by oneDNN
        bias_grad = grad_t.sum(1, dtype=torch.float32)  # (out,)
        if step is None:
            weight.grad = weight_grad.float().mul_(scale / batch)
            bias.grad = bias_grad.div_(batch)
            return
        # The update itself in fp32. (add_ of a bf16 tensor into an fp32 one converts element by
        # element, several times slower than converting first.)
        weight.add_(weight_grad.float(), alpha=step * scale)
        bias.add_(bias_grad, alpha=step)
