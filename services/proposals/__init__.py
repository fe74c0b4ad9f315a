"""The Musrenbang proposals service: from RT/RW proposal to realisation."""
