"""model.json of an export folder and manifest.json of an engine folder: typed, versioned, validated."""
