"""minigrad: a small numpy library whose modules know their first and second
derivatives, checked against autograd and finite differences."""
from .activations import Elementwise, Identity, ReLU, Sigmoid, Softmax, Tanh, logsumexp, softmax
from .check import CheckReport, check_loss, check_model, check_module
from .derivatives import (gauss_newton, ggn_vp, grad, hessian, hvp,
                          input_jacobian, jacobian, parameters_to_vector, per_sample_grads,
                          vector_to_parameters)
from .feedback import Answer, Choice, check_exercise, diagnose
from .layers import Linear
from .losses import Loss, MSELoss, NLLLoss, SoftmaxCrossEntropy
from .module import Module
from .sequential import Sequential
from . import optim
from . import operators
from .operators import empirical_fisher, ggn_operator, hessian_operator

__all__ = [
    "Module", "Sequential", "Linear", "Elementwise", "Identity", "Tanh", "Sigmoid", "ReLU",
    "Softmax", "Loss", "MSELoss", "SoftmaxCrossEntropy", "NLLLoss", "logsumexp", "softmax",
    "parameters_to_vector", "vector_to_parameters", "grad", "per_sample_grads", "jacobian",
    "input_jacobian", "hessian", "gauss_newton", "hvp", "ggn_vp",
    "check_module", "check_loss", "check_model", "CheckReport", "check_exercise", "Answer", "Choice", "diagnose", "optim",
    "operators", "hessian_operator", "ggn_operator", "empirical_fisher",
]
