import pandas as pd
import pytest

from rakuten import data, data_pictures
from tests.helpers.stores import write_challenge_files


def test_pictures_are_matched_by_ids_and_labelled_by_index(shared_dir):
    frame, labels, counts = data_pictures.load_images(shared_dir)
    manifest = pd.read_csv(shared_dir / "images" / "image_train_manifest.csv", index_col="index")
    assert counts.found == len(manifest) == len(frame) and counts.unreadable == 0
    assert counts.missing == len(data_pictures.read_product_ids(shared_dir)) - len(frame)
    assert labels.equals(manifest.loc[frame.index, "prdtypecode"].astype("int64").rename("prdtypecode"))
    names = frame["image_path"].str.rsplit("/", n=1).str[-1]
    assert (names == manifest.loc[frame.index, "filename"]).all()


def test_unreadable_and_missing_pictures_are_counted_or_refused(tmp_path, shared_dir):
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=60, seed=1)
    images = tmp_path / "images"
    images.mkdir()
    for path in frame["image_path"].iloc[:50]:
        (images / path.rsplit("/", 1)[1]).write_bytes(open(path, "rb").read())
    (images / frame["image_path"].iloc[50].rsplit("/", 1)[1]).write_bytes(b"")  # empty file
    write_challenge_files(tmp_path, frame.drop(columns="image_path").assign(designation="x"), labels)
    loaded, _, counts = data_pictures.load_images(tmp_path, images_dir=images)
    assert (counts.found, counts.missing, counts.unreadable) == (50, 9, 1)
    assert len(loaded) == 50
    with pytest.raises(data.DataError, match="9 products have no picture and 1 pictures are unreadable"):
        data_pictures.load_images(tmp_path, images_dir=images, strict=True)
    with pytest.raises(data.DataError, match="image folder not found"):
        data_pictures.load_images(tmp_path, images_dir=tmp_path / "nowhere")
