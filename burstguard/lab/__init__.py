"""The incident lab: a qemu guest with a pre-6.7 kernel reproducing the mount stall."""
