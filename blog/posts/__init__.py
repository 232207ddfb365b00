"""The blog: posts, comments, tags, likes and follows."""
