-- A parabench database of schema version 2, made by main at ab24c36 with
-- `python -m parabench run --family vit,paraformer-fused --depth 1,2 --batch 1 --min-time 0.05
--  --min-samples 3 --max-samples 5`, dumped with sqlite3's iterdump. tests/test_executors.py
-- opens it with today's Store to check that an old database migrates and reads back.
PRAGMA application_id=1347568195;
PRAGMA user_version=2;
BEGIN TRANSACTION;
CREATE TABLE comparisons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT NOT NULL,
    baseline    TEXT NOT NULL,
    contender   TEXT NOT NULL,
    result_json TEXT NOT NULL           -- what `parabench compare` concluded, per benchmark
);
CREATE TABLE peaks (
    machine     TEXT NOT NULL,
    device      TEXT NOT NULL,
    dtype       TEXT NOT NULL,
    tflops      REAL NOT NULL,
    measured_at TEXT NOT NULL,
    detail_json TEXT,
    PRIMARY KEY (machine, device, dtype)
);
INSERT INTO "peaks" VALUES('vm/Intel(R) Xeon(R) Processor','cpu-1t','float32',1.09540263753023489612e-01,'2026-11-23T14:27:07+00:00','{"reps": 5, "threads": 1, "size": 2048, "dtype": "float32", "best_s": 0.15683611299982658, "method": "matmul"}');
CREATE TABLE records (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id             TEXT NOT NULL REFERENCES runs(run_id),
    key                TEXT NOT NULL,
    family             TEXT NOT NULL,
    depth              INTEGER NOT NULL,
    batch              INTEGER NOT NULL,
    dtype              TEXT NOT NULL,
    mode               TEXT NOT NULL,
    workload           TEXT NOT NULL,
    device             TEXT NOT NULL,
    img_size           INTEGER,
    width              TEXT,
    status             TEXT NOT NULL,     -- ok | oom | error | skipped
    reason             TEXT,
    unit               TEXT NOT NULL DEFAULT 'ms',
    samples_json       TEXT,
    n                  INTEGER,
    median_ms          REAL,
    mean_ms            REAL,
    p10_ms             REAL,
    p90_ms             REAL,
    iqr_ms             REAL,
    noisy              INTEGER,
    throughput         REAL,              -- images per second
    params             INTEGER,
    flops              REAL,              -- forward FLOPs per image (2 x MACs)
    flops_analytic     REAL,
    peak_mem_allocated INTEGER,           -- bytes
    peak_mem_reserved  INTEGER,           -- bytes
    peak_rss           INTEGER,           -- bytes
    trace_dir TEXT, kernels_per_forward REAL, gpu_busy_fraction REAL, cpu_dispatch_ms REAL, energy_j_per_image REAL, mean_power_w REAL, achieved_tflops REAL, peak_fraction REAL, throttled INTEGER,
    extra_json         TEXT,
    created_at         TEXT NOT NULL,
    checksum           TEXT,              -- sha256 of the stored values (NULL before v2)
    UNIQUE (run_id, key)
);
INSERT INTO "records" VALUES(1,'20261123-142705-b7928e','vit/d1/b1/float32/eager/infer','vit',1,1,'float32','eager','infer','cpu',32,'tiny','ok',NULL,'ms','[0.426027, 0.38668, 0.36473, 0.375021, 0.395569]',5,0.38668,3.89605400000000046123e-01,0.3688464,0.4138438,2.05480000000000107007e-02,0,2.58611772007861782192e+03,64266,2139648.0,2139648.0,NULL,NULL,819654656,NULL,NULL,NULL,NULL,NULL,NULL,5.5333816075307743626e-03,5.05145908723270142814e-02,NULL,'{"rss_peak_is_lifetime": false, "achieved_tflops": 0.005533381607530774, "peak_fraction": 0.050514590872327014, "peak_tflops": 0.10954026375302349, "peak_source": "measured", "flops_factor": 1.0, "energy_j_per_image": null, "mean_power_w": null, "throttled": null, "telemetry_missing": "NVML measures GPUs; this point ran on the CPU (NVML unavailable: NVML Shared Library Not Found)"}','2026-11-23T14:27:07+00:00','6c63c6d3dc721ec8aad2cb5a8b0bf3ab98fefbf3649df70be7508f478fb80b81');
INSERT INTO "records" VALUES(2,'20261123-142705-b7928e','vit/d2/b1/float32/eager/infer','vit',2,1,'float32','eager','infer','cpu',32,'tiny','ok',NULL,'ms','[0.701067, 0.588987, 0.542993, 4.903878, 0.646293]',5,0.646293,1.47664359999999983408e+00,0.5613906,3.22275360000000032911e+00,1.12079999999999957438e-01,1,1.5472858285638246798e+03,114250,3884800.0,3884800.0,NULL,NULL,825638912,NULL,NULL,NULL,NULL,NULL,NULL,6.01089598680474603009e-03,5.48738498599683696688e-02,NULL,'{"rss_peak_is_lifetime": false, "achieved_tflops": 0.006010895986804746, "peak_fraction": 0.05487384985996837, "peak_tflops": 0.10954026375302349, "peak_source": "measured", "flops_factor": 1.0, "energy_j_per_image": null, "mean_power_w": null, "throttled": null, "telemetry_missing": "NVML measures GPUs; this point ran on the CPU (NVML unavailable: NVML Shared Library Not Found)"}','2026-11-23T14:27:08+00:00','f734f0b03151d0a878335be735902b8a098e20694dff3c89f8528289c30e8664');
INSERT INTO "records" VALUES(3,'20261123-142705-b7928e','paraformer-fused/d1/b1/float32/eager/infer','paraformer-fused',1,1,'float32','eager','infer','cpu',32,'tiny','ok',NULL,'ms','[0.25025, 0.238158, 0.248203, 0.2428, 0.228181]',5,0.2428,0.2415184,0.2321718,0.2494312,1.00449999999999983746e-02,0,4.11861614497528808007e+03,64074,2139648.0,2139648.0,NULL,NULL,827445248,NULL,NULL,NULL,NULL,NULL,NULL,8.81238879736408534104e-03,8.04488550185807754777e-02,NULL,'{"rss_peak_is_lifetime": false, "achieved_tflops": 0.008812388797364085, "peak_fraction": 0.08044885501858078, "peak_tflops": 0.10954026375302349, "peak_source": "measured", "flops_factor": 1.0, "energy_j_per_image": null, "mean_power_w": null, "throttled": null, "telemetry_missing": "NVML measures GPUs; this point ran on the CPU (NVML unavailable: NVML Shared Library Not Found)"}','2026-11-23T14:27:08+00:00','7ecc8697d9544d93501b536eb6215a16a758f52f1e7cf9375660ffc0fead8f81');
INSERT INTO "records" VALUES(4,'20261123-142705-b7928e','paraformer-fused/d2/b1/float32/eager/infer','paraformer-fused',2,1,'float32','eager','infer','cpu',32,'tiny','ok',NULL,'ms','[0.265311, 0.335477, 0.266215, 0.249922, 0.308917]',5,0.266215,2.85168400000000044069e-01,0.2560776,0.324853,4.36059999999999781117e-02,1,3.75636233871119247854e+03,113866,3884800.0,3884800.0,NULL,NULL,827580416,NULL,NULL,NULL,NULL,NULL,NULL,1.45927164134252388555e-02,1.33217831630631389217e-01,NULL,'{"rss_peak_is_lifetime": false, "achieved_tflops": 0.014592716413425239, "peak_fraction": 0.1332178316306314, "peak_tflops": 0.10954026375302349, "peak_source": "measured", "flops_factor": 1.0, "energy_j_per_image": null, "mean_power_w": null, "throttled": null, "telemetry_missing": "NVML measures GPUs; this point ran on the CPU (NVML unavailable: NVML Shared Library Not Found)"}','2026-11-23T14:27:08+00:00','db252d1f7bb9cb24b3c52a14278e4992af49073f1a3e118fee300a138544d16d');
CREATE TABLE runs (
    run_id       TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL,           -- running | finished | interrupted | failed
    preset       TEXT,
    command      TEXT,
    sweep_json   TEXT,
    git_commit   TEXT,
    git_dirty    INTEGER,
    machine      TEXT,
    env_json     TEXT
);
INSERT INTO "runs" VALUES('20261123-142705-b7928e','2026-11-23T14:27:05+00:00','2026-11-23T14:27:08+00:00','finished','quick+flags','python -m parabench run --family vit,paraformer-fused --depth 1,2 --batch 1 --min-time 0.05 --min-samples 3 --max-samples 5 --db /tmp/v2made.db --no-progress','{"families": ["vit", "paraformer-fused"], "depths": [1, 2], "batches": [1], "dtypes": ["float32"], "modes": ["eager"], "workloads": ["infer"], "device": "cpu", "width": "tiny", "img_size": 32, "warmup": 3, "min_samples": 3, "max_samples": 5, "min_time_s": 0.05, "threads": 1, "depth_overrides": {"resnet": [18, 34]}, "name": "quick+flags"}',NULL,NULL,'vm/Intel(R) Xeon(R) Processor','{"machine": "vm/Intel(R) Xeon(R) Processor", "hostname": "vm", "platform": "Linux-6.18.44-fc-v657-x86_64-with-glibc2.36", "python": "3.11.7", "torch": "2.14.1+cu130", "timm": "1.0.31", "cuda": "13.0", "cudnn": 92400, "gpu": {"available": false, "reason": "torch has CUDA support but finds no usable GPU/driver"}, "nvml": {"available": false, "reason": "NVML unavailable: NVML Shared Library Not Found"}, "cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2, "threads": 1, "git": {"commit": null, "dirty": null}}');
CREATE INDEX records_run ON records(run_id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('records',4);
COMMIT;
