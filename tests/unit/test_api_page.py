"""The API page (book/11_api.md) lists every public name of every minigrad module
(each name of its __all__, directly or through an automodule with :members:)."""
import importlib
import os
import re

import pytest

PAGE = os.path.join(os.path.dirname(__file__), "..", "..", "book", "11_api.md")
MODULES = ["minigrad", "minigrad.activations", "minigrad.chain", "minigrad.check",
           "minigrad.derivatives", "minigrad.feedback", "minigrad.layers", "minigrad.losses",
           "minigrad.module", "minigrad.operators", "minigrad.optim", "minigrad.sequential"]


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_is_on_the_api_page(module):
    text = open(PAGE, encoding="utf-8").read()
    documented = set(re.findall(r"\.\. auto\w+:: (?:minigrad\.[\w.]*\.)?(\w+)", text))
    whole = re.search(rf"\.\. automodule:: {re.escape(module)}\n\s+:members:", text)
    names = importlib.import_module(module).__all__
    submodules = {"optim", "operators"}                      # pages of their own below
    missing = [name for name in names if name not in documented and name not in submodules]
    assert whole or not missing, f"{module}: not on book/11_api.md: {missing}"
