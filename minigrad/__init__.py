"""minigrad: a small numpy library whose modules know their first and second
derivatives, checked against autograd and finite differences."""
from .activations import Elementwise, Identity, ReLU, Sigmoid, Softmax, Tanh
from .check import CheckReport, check_loss, check_model, check_module
from .feedback import check_exercise
from .derivatives import (gauss_newton, ggn_vp, grad, hessian, hvp, input_jacobian, jacobian,
                          parameters_to_vector, per_sample_grads, vector_to_parameters)
from .layers import Linear, Sequential
from .losses import Loss, MSELoss, NLLLoss, SoftmaxCrossEntropy, logsumexp
from .module import Module
from . import optim

__all__ = [
    "Module", "Sequential", "Linear", "Elementwise", "Identity", "Tanh", "Sigmoid", "ReLU",
    "Softmax", "Loss", "MSELoss", "SoftmaxCrossEntropy", "NLLLoss", "logsumexp",
    "parameters_to_vector", "vector_to_parameters", "grad", "per_sample_grads", "jacobian",
    "input_jacobian", "hessian", "gauss_newton", "hvp", "ggn_vp",
    "check_module", "check_loss", "check_model", "CheckReport", "check_exercise", "optim",
]
