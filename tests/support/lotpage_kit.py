"""Shared helpers of the tests, first written for `test_web_lotpage.py`."""

from __future__ import annotations

__all__ = ["PAGE_TEXT"]


PAGE_TEXT = """() => {
  const texts = [document.title, document.body.innerText];
  for (const node of document.querySelectorAll('[aria-label], [title], [alt], [placeholder]')) {
    for (const name of ['aria-label', 'title', 'alt', 'placeholder']) {
      if (node.getAttribute(name)) texts.push(node.getAttribute(name));
    }
  }
  for (const node of document.querySelectorAll('option')) texts.push(node.textContent);
  return texts.join('\\n');
}"""
