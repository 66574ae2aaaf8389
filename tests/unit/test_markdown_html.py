"""Markdown as the email channel shows it (HTML): nothing in an answer or a report loads when the mail is read."""

from __future__ import annotations

from html.parser import HTMLParser

from channels.markdown import html


class Tags(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_an_image_is_a_link_to_it_and_nothing_is_loaded():
    markup = html("Shipped: ![the *new* chart](https://tracker.example/p.gif?who=alice) and ![](https://x.example/a.png)")
    tags = Tags(markup).tags
    assert [t for t, _ in tags] == ["p", "a", "a"]
    assert [a["href"] for _, a in tags[1:]] == ["https://tracker.example/p.gif?who=alice", "https://x.example/a.png"]
    assert not any("src" in a for _, a in tags)
    assert "image: the new chart</a>" in markup
    assert "image: https://x.example/a.png</a>" in markup  # no words: the address is the link's text


def test_raw_html_in_markdown_is_text_and_a_table_stays_a_table():
    markup = html('<img src="https://tracker.example/p.gif"> <script>alert(1)</script>\n\n'
                  '| a | b |\n|---|---|\n| 1 | 2 |')
    tags = [t for t, _ in Tags(markup).tags]
    assert "img" not in tags
    assert "script" not in tags
    assert "&lt;img src=" in markup
    assert tags[tags.index("table"):] == ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
