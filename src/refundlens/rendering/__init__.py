"""rendering: what the web page and the evidence report share to put words on a page — the
zh-CN/en catalogs and the Jinja2 environment (``i18n``), and the formatting of facts, numbers,
amounts and times for people (``readable``). Below both ``report/`` and ``service/``."""
