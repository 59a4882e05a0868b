"""The clinician review app (Streamlit). Pages call db/ and feedback/ functions only."""
