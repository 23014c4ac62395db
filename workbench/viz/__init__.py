"""Pure functions that return plotly figures or 3D scenes; nothing here imports streamlit."""
