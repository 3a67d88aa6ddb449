"""MkDocs hook: the configuration reference, generated from the schema at build time (gpusim.config_reference)."""

MARKER = "<!-- config reference -->"


def on_page_markdown(markdown, page, config, files):
    if MARKER in markdown:
        from gpusim.config_reference import markdown as reference

        markdown = markdown.replace(MARKER, reference())
    return markdown
