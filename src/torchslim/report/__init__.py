"""Reports of runs and searches: one self-contained HTML file (plots embedded), markdown (with
its figures as PNG files) and JSON. Importing this package registers the three formats with the
runner (:func:`torchslim.recipe.result.register_report_writer`), which never imports it.

Example:
    >>> import torchslim.report as report
    >>> from torchslim.recipe.result import REPORT_WRITERS
    >>> sorted(REPORT_WRITERS.names())
    ['html', 'json', 'markdown']
"""

from pathlib import Path

from torchslim.recipe.result import REPORT_WRITERS, register_report_writer, write_reports
from torchslim.report.content import Doc, Figure, Table, doc_of
from torchslim.report.writers import to_html, to_markdown, write_html, write_json, write_markdown

for _fmt, _writer in (("html", write_html), ("markdown", write_markdown), ("json", write_json)):
    if _fmt not in REPORT_WRITERS:
        register_report_writer(_fmt, _writer)


def write_report(result: object, out_dir: str, formats: tuple[str, ...] = ("html", "markdown", "json")) -> dict[str, str]:
    """Write the reports of a run or search result into ``out_dir``; ``{format: path}``.

    Example:
        >>> from torchslim.report import write_report  # doctest: +SKIP
        >>> write_report(result, "out/demo")  # doctest: +SKIP
        {'html': 'out/demo/report.html', ...}
    """
    files, _ = write_reports(result, Path(out_dir), formats)
    return files


__all__ = ["Doc", "Figure", "Table", "doc_of", "to_html", "to_markdown", "write_html", "write_json",
           "write_markdown", "write_report"]
