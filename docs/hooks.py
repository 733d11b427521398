"""MkDocs hooks: the pages show the repository's committed figures.

A page links a figure as ``../figures/NAME.png``, the path that works when the Markdown is read in
the repository; the site gets a copy of ``figures/`` and the links are pointed at it.
"""

from pathlib import Path

from mkdocs.structure.files import File

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def on_files(files, config):
    for path in sorted(FIGURES.glob("*.png")):
        name = f"figures/{path.name}"
        files.append(File(name, str(FIGURES.parent), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    return markdown.replace("](../figures/", "](figures/")
