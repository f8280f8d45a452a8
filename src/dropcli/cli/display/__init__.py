"""What the user sees: Rich tables and progress, and matplotlib figures. The only importer of Rich and matplotlib."""
