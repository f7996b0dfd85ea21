option task = {name: "edgemon-keep-aggregates", every: 1h}

// the last two days of aggregate points into the long-kept bucket (same series, same times)
from(bucket: "edge")
    |> range(start: -2d)
    |> filter(fn: (r) => r._measurement == "aggregate")
    |> to(bucket: "edge_kept")
