"""Filling the panel's Qt widgets (tables, combo boxes) with their signals blocked, so that the slots connected to
them hear only the user's changes."""

from __future__ import annotations

from collections.abc import Sequence


def set_table_rows(table, rows: Sequence[Sequence[str]], read_only_columns: Sequence[int] = ()) -> None:
    """A QTableWidget's rows, one text per cell; cells of ``read_only_columns`` cannot be edited."""
    import qt

    was_blocked = table.blockSignals(True)
    table.setRowCount(len(rows))
    for row, texts in enumerate(rows):
        for column, text in enumerate(texts):
            item = qt.QTableWidgetItem(text)
            if column in read_only_columns:
                item.setFlags(item.flags() ^ qt.Qt.ItemIsEditable)
            table.setItem(row, column, item)
    table.blockSignals(was_blocked)


def set_combo_items(combo_box, names: Sequence[str], current: str) -> None:
    """A QComboBox's items, ``current`` selected when it is one of them (else the first)."""
    was_blocked = combo_box.blockSignals(True)
    combo_box.clear()
    combo_box.addItems(list(names))
    combo_box.setCurrentIndex(max(0, combo_box.findText(current)))
    combo_box.blockSignals(was_blocked)
