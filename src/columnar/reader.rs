//! Reading entry records back from nfs-walker's Parquet files.
