"""The Schema & Templates panel: the archive's tables with their columns, types and comments; the record
schema's version, the versions it accepts and migrates, and the versions the archive holds; the
templates (Enter loads one into the editor). The highlighted node's details show below the tree, so
the tree stays one line per node at 34 columns."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static, Tree

from archives_tui.editor import sql_syntax
from exporter.engine.interface import Catalog, Table
from exporter.query.templates import Template
from exporter.schema_registry import SchemaRegistry

KINDS = {"MergeTree": "table", "View": "view", "MaterializedView": "mat. view", "SummingMergeTree": "table"}


class SchemaPanel(Vertical):
    BORDER_TITLE = "Schema & Templates"

    def compose(self):
        tree: Tree[str] = Tree("archive", id="schema-tree")
        tree.show_root = False
        yield tree
        yield Static("", id="schema-detail")

    def show(self, catalog: Catalog, templates: dict[str, Template], registry: SchemaRegistry | None = None,
             held: dict[str, int] | None = None) -> None:
        """Fill the tree; ``held`` counts the archive's rows by schema_version (None: not read)."""
        self.catalog, self.templates = catalog, templates
        tree = self.query_one("#schema-tree", Tree)
        tree.clear()
        tables = tree.root.add("Tables", expand=True)
        for table in sorted((t for t in catalog.tables if not t.name.startswith(".")), key=lambda t: t.name):
            node = tables.add(Text.assemble(table.name, (f" {KINDS.get(table.engine, table.engine)}", "dim")),
                              data=f"table:{table.name}")
            for column in table.columns:
                node.add_leaf(Text.assemble(column.name, (f" {column.type}", "dim")),
                              data=f"column:{table.name}.{column.name}")
        found = tree.root.add("Templates", expand=True)
        for template in templates.values():  # the seed's titles carry their [1]-[5]
            found.add_leaf(Text(template.title), data=f"template:{template.name}")
        if registry is not None:
            schema = tree.root.add("Record schema", expand=True)
            for line in schema_lines(registry, held):
                schema.add_leaf(line, data="schema")

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        detail = self.detail(event.node.data or "")
        self.query_one("#schema-detail", Static).update(detail)
        self.query_one("#schema-detail").set_class(bool(detail), "-shown")

    def detail(self, data: str):
        """What the highlighted node is: a table's comment, a column's type and comment, a template's
        parameters and SQL."""
        kind, _, name = data.partition(":")
        if kind == "table":
            table = self._table(name)
            return Text.assemble((table.name, "bold"), f" · {table.engine} · {len(table.columns)} columns\n",
                                 (table.comment or "", "dim"))
        if kind == "column":
            table_name, _, column_name = name.partition(".")
            column = next(c for c in self._table(table_name).columns if c.name == column_name)
            return Text.assemble((column.name, "bold"), f" {column.type}\n", (column.comment or "no comment", "dim"))
        if kind == "template":
            template = self.templates[name]
            parameters = ", ".join(f"{k}={v}" for k, v in template.defaults.items()) or "none"
            return Group(Text.assemble((template.description, "dim"), f"\nparameters: {parameters}\nEnter loads it"),
                         sql_syntax(template.sql.strip(), self.app, word_wrap=True))
        return ""

    def _table(self, name: str) -> Table:
        return next(t for t in self.catalog.tables if t.name == name)


def schema_lines(registry: SchemaRegistry, held: dict[str, int] | None) -> list[Text]:
    """The current version, what the exporter accepts (migrating older versions), and what is archived."""
    lines = [Text.assemble("current ", (registry.current, "bold"))]
    accepted = sorted(registry.schemas)
    lines.append(Text.assemble("accepts ", ", ".join(accepted), (" (others: dead letters)", "dim")))
    for old, (new, _) in sorted(registry.migrations.items()):
        lines.append(Text(f"migrates {old} → {new}"))
    if held is not None:
        for version, rows in sorted(held.items()):
            style = "" if version in registry.schemas else "yellow"
            lines.append(Text.assemble("warm holds ", (version, style), f" · {rows:,} rows"))
    return lines
