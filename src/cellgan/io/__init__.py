"""Reading images and datasets; writing cell stores, tables, GeoJSON."""
