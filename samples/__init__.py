"""Sample world: synthetic railway scenes with graffiti, ground truth and a demo model.

Nothing here is imported by the edge modules at run time; it exists so the product can be
demonstrated and tested without any downloaded data set or weights.
"""
