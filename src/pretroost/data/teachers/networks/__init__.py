"""Networks of the structure teachers (:mod:`pretroost.data.teachers` holds the teachers: crystal
graphs, embedding, cache): the Crystal Twins CGCNN and CHGNet."""
