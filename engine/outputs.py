"""Output types (SPEC §1): what the compile step asks the model for, and how the deliverable is kept.

Each type gives the compile step its instructions and a ``kind``: ``text`` deliverables are
Markdown in the deliverable's ``content``; ``image`` and ``file`` deliverables are files (their
bytes under ``deliverable:<id>:file``; ``content`` describes them). A plugin adds a type with
:func:`register`, which also lets task definitions name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .model import register_output_type


@dataclass(frozen=True)
class OutputType:
    """How one output type is compiled and stored.

    Attributes:
        name: the ``output_type`` a task definition names.
        instructions: what the compile step asks the model to write.
        kind: ``text`` (Markdown content), ``image`` (generated, PNG) or ``file`` (the text as a file).
        extension: the file name's extension for ``file`` and ``image`` deliverables.
        content_type: the file's media type.
    """

    name: str
    instructions: str
    kind: Literal["text", "image", "file"] = "text"
    extension: str = "md"
    content_type: str = "text/markdown"


REGISTRY: dict[str, OutputType] = {}


def register(output: OutputType) -> OutputType:
    REGISTRY[output.name] = output
    register_output_type(output.name)
    return output


def get(name: str) -> OutputType:
    """The output type ``name``; an unknown one (validated away at definition time) is free-form."""
    return REGISTRY.get(name) or REGISTRY["freeform"]


def filename(title: str, output: OutputType) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "deliverable"
    return f"{stem[:60]}.{output.extension}"


for _type in (
    OutputType("freeform", "Write what the task asks for, in Markdown, in whatever shape fits it best."),
    OutputType("blog_post", "Write a blog post in Markdown: a title line (# ...), a short lead paragraph, "
                            "sections with headings, and a closing paragraph. Use the material given; "
                            "do not invent facts."),
    OutputType("report", "Write a report in Markdown: a title line (# ...), a one-paragraph summary, then "
                         "the findings by topic, then who did not answer (timed out, failed) and open "
                         "issues. Attribute answers to people by name. Keep it to about one page."),
    OutputType("summary", "Write a short summary in Markdown: a title line (# ...) and at most five bullet "
                          "points with the key facts and decisions. No preamble."),
    OutputType("proofreading", "Proofread the text given: return the corrected text in full, then a short "
                               "list of the changes made and why."),
    OutputType("image", "Write one paragraph describing the image to generate: subject, composition, style "
                        "and colours. Only the description.", kind="image", extension="png",
               content_type="image/png"),
    OutputType("file", "Write the content of the file the task asks for, exactly as it should be saved; "
                       "no commentary before or after it.", kind="file", extension="txt",
               content_type="text/plain"),
):
    register(_type)
