-- +goose Up
-- A cache model may classify in its samples' whitened space (classify.FitWhitening): the rank × features
-- basis, flattened row by row (NULL: none); center then holds the samples' mean and head the prototypes
-- in that space, whose size dims already records.
ALTER TABLE cache_models ADD COLUMN basis real[];

-- +goose Down
ALTER TABLE cache_models DROP COLUMN basis;
