"""The engine of Archives: export pipeline, tiers, query layer, status. It never imports a UI package."""
