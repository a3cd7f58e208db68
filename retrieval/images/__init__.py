"""Images: decoding files to RGB with their metadata, EXIF, GPU decoding, JPEG headers, thumbnails."""
