"""Result rows as data: the column schema, the files' formats, derived tables (views), and
pytest-benchmark's JSON read as rows. Reading and writing run directories is bench.store."""
