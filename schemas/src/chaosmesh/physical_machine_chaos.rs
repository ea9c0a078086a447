//! `PhysicalMachineChaos`: chaosd attacks on hosts (`PhysicalMachine` objects or addresses).
//!
//! Each action has a block named after it (`network-delay`, `stress-cpu`…) whose field names
//! follow the CRD, mostly kebab-case. The block types below are derived from the CRD schema.

use serde::{Deserialize, Serialize};

use super::common::{
    check_duration, check_environment, check_mode_value, check_percent_str, check_range,
    check_rate, check_signed_duration, common_fault_accessors,
};
use super::selector::PhysicalMachineSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

/// `spec.action` of a `PhysicalMachineChaos`: the chaosd attack to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum PhysicalMachineChaosAction {
    #[serde(rename = "stress-cpu")]
    StressCpu,
    #[serde(rename = "stress-mem")]
    StressMem,
    #[serde(rename = "disk-read-payload")]
    DiskReadPayload,
    #[serde(rename = "disk-write-payload")]
    DiskWritePayload,
    #[serde(rename = "disk-fill")]
    DiskFill,
    #[serde(rename = "network-corrupt")]
    NetworkCorrupt,
    #[serde(rename = "network-duplicate")]
    NetworkDuplicate,
    #[serde(rename = "network-loss")]
    NetworkLoss,
    #[serde(rename = "network-delay")]
    NetworkDelay,
    #[serde(rename = "network-partition")]
    NetworkPartition,
    #[serde(rename = "network-dns")]
    NetworkDns,
    #[serde(rename = "network-bandwidth")]
    NetworkBandwidth,
    #[serde(rename = "network-flood")]
    NetworkFlood,
    #[serde(rename = "network-down")]
    NetworkDown,
    #[serde(rename = "process")]
    Process,
    #[serde(rename = "jvm-exception")]
    JvmException,
    #[serde(rename = "jvm-gc")]
    JvmGc,
    #[serde(rename = "jvm-latency")]
    JvmLatency,
    #[serde(rename = "jvm-return")]
    JvmReturn,
    #[serde(rename = "jvm-stress")]
    JvmStress,
    #[serde(rename = "jvm-rule-data")]
    JvmRuleData,
    #[serde(rename = "jvm-mysql")]
    JvmMysql,
    #[serde(rename = "clock")]
    Clock,
    #[serde(rename = "redis-expiration")]
    RedisExpiration,
    #[serde(rename = "redis-penetration")]
    RedisPenetration,
    #[serde(rename = "redis-cacheLimit")]
    RedisCacheLimit,
    #[serde(rename = "redis-restart")]
    RedisRestart,
    #[serde(rename = "redis-stop")]
    RedisStop,
    #[serde(rename = "kafka-fill")]
    KafkaFill,
    #[serde(rename = "kafka-flood")]
    KafkaFlood,
    #[serde(rename = "kafka-io")]
    KafkaIo,
    #[serde(rename = "file-create")]
    FileCreate,
    #[serde(rename = "file-modify")]
    FileModify,
    #[serde(rename = "file-delete")]
    FileDelete,
    #[serde(rename = "file-rename")]
    FileRename,
    #[serde(rename = "file-append")]
    FileAppend,
    #[serde(rename = "file-replace")]
    FileReplace,
    #[serde(rename = "vm")]
    Vm,
    #[serde(rename = "user_defined")]
    UserDefined,
}

impl PhysicalMachineChaosAction {
    pub const ALL: &'static [PhysicalMachineChaosAction] = &[
        Self::StressCpu,
        Self::StressMem,
        Self::DiskReadPayload,
        Self::DiskWritePayload,
        Self::DiskFill,
        Self::NetworkCorrupt,
        Self::NetworkDuplicate,
        Self::NetworkLoss,
        Self::NetworkDelay,
        Self::NetworkPartition,
        Self::NetworkDns,
        Self::NetworkBandwidth,
        Self::NetworkFlood,
        Self::NetworkDown,
        Self::Process,
        Self::JvmException,
        Self::JvmGc,
        Self::JvmLatency,
        Self::JvmReturn,
        Self::JvmStress,
        Self::JvmRuleData,
        Self::JvmMysql,
        Self::Clock,
        Self::RedisExpiration,
        Self::RedisPenetration,
        Self::RedisCacheLimit,
        Self::RedisRestart,
        Self::RedisStop,
        Self::KafkaFill,
        Self::KafkaFlood,
        Self::KafkaIo,
        Self::FileCreate,
        Self::FileModify,
        Self::FileDelete,
        Self::FileRename,
        Self::FileAppend,
        Self::FileReplace,
        Self::Vm,
        Self::UserDefined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StressCpu => "stress-cpu",
            Self::StressMem => "stress-mem",
            Self::DiskReadPayload => "disk-read-payload",
            Self::DiskWritePayload => "disk-write-payload",
            Self::DiskFill => "disk-fill",
            Self::NetworkCorrupt => "network-corrupt",
            Self::NetworkDuplicate => "network-duplicate",
            Self::NetworkLoss => "network-loss",
            Self::NetworkDelay => "network-delay",
            Self::NetworkPartition => "network-partition",
            Self::NetworkDns => "network-dns",
            Self::NetworkBandwidth => "network-bandwidth",
            Self::NetworkFlood => "network-flood",
            Self::NetworkDown => "network-down",
            Self::Process => "process",
            Self::JvmException => "jvm-exception",
            Self::JvmGc => "jvm-gc",
            Self::JvmLatency => "jvm-latency",
            Self::JvmReturn => "jvm-return",
            Self::JvmStress => "jvm-stress",
            Self::JvmRuleData => "jvm-rule-data",
            Self::JvmMysql => "jvm-mysql",
            Self::Clock => "clock",
            Self::RedisExpiration => "redis-expiration",
            Self::RedisPenetration => "redis-penetration",
            Self::RedisCacheLimit => "redis-cacheLimit",
            Self::RedisRestart => "redis-restart",
            Self::RedisStop => "redis-stop",
            Self::KafkaFill => "kafka-fill",
            Self::KafkaFlood => "kafka-flood",
            Self::KafkaIo => "kafka-io",
            Self::FileCreate => "file-create",
            Self::FileModify => "file-modify",
            Self::FileDelete => "file-delete",
            Self::FileRename => "file-rename",
            Self::FileAppend => "file-append",
            Self::FileReplace => "file-replace",
            Self::Vm => "vm",
            Self::UserDefined => "user_defined",
        }
    }
}

/// `spec` of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhysicalMachineChaosSpec {
    pub action: PhysicalMachineChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Which `PhysicalMachine` objects to hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<PhysicalMachineSelectorSpec>,
    /// DEPRECATED in Chaos Mesh (use `selector`): chaosd addresses to hit directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<String>,
    /// Experiment id, generated by Chaos Mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(rename = "clock", default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<PmClockSpec>,
    #[serde(rename = "disk-fill", default, skip_serializing_if = "Option::is_none")]
    pub disk_fill: Option<PmDiskFillSpec>,
    #[serde(
        rename = "disk-read-payload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_read_payload: Option<PmDiskReadPayloadSpec>,
    #[serde(
        rename = "disk-write-payload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_write_payload: Option<PmDiskWritePayloadSpec>,
    #[serde(
        rename = "file-append",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub file_append: Option<PmFileAppendSpec>,
    #[serde(
        rename = "file-create",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub file_create: Option<PmFileCreateSpec>,
    #[serde(
        rename = "file-delete",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub file_delete: Option<PmFileDeleteSpec>,
    #[serde(
        rename = "file-modify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub file_modify: Option<PmFileModifySpec>,
    #[serde(
        rename = "file-rename",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub file_rename: Option<PmFileRenameSpec>,
    #[serde(
        rename = "file-replace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub file_replace: Option<PmFileReplaceSpec>,
    #[serde(
        rename = "http-abort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub http_abort: Option<PmHttpAbortSpec>,
    #[serde(
        rename = "http-config",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub http_config: Option<PmHttpConfigSpec>,
    #[serde(
        rename = "http-delay",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub http_delay: Option<PmHttpDelaySpec>,
    #[serde(
        rename = "http-request",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub http_request: Option<PmHttpRequestSpec>,
    #[serde(
        rename = "jvm-exception",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub jvm_exception: Option<PmJvmExceptionSpec>,
    #[serde(rename = "jvm-gc", default, skip_serializing_if = "Option::is_none")]
    pub jvm_gc: Option<PmJvmGcSpec>,
    #[serde(
        rename = "jvm-latency",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub jvm_latency: Option<PmJvmLatencySpec>,
    #[serde(rename = "jvm-mysql", default, skip_serializing_if = "Option::is_none")]
    pub jvm_mysql: Option<PmJvmMysqlSpec>,
    #[serde(
        rename = "jvm-return",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub jvm_return: Option<PmJvmReturnSpec>,
    #[serde(
        rename = "jvm-rule-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub jvm_rule_data: Option<PmJvmRuleDataSpec>,
    #[serde(
        rename = "jvm-stress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub jvm_stress: Option<PmJvmStressSpec>,
    #[serde(
        rename = "kafka-fill",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kafka_fill: Option<PmKafkaFillSpec>,
    #[serde(
        rename = "kafka-flood",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kafka_flood: Option<PmKafkaFloodSpec>,
    #[serde(rename = "kafka-io", default, skip_serializing_if = "Option::is_none")]
    pub kafka_io: Option<PmKafkaIoSpec>,
    #[serde(
        rename = "network-bandwidth",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_bandwidth: Option<PmNetworkBandwidthSpec>,
    #[serde(
        rename = "network-corrupt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_corrupt: Option<PmNetworkCorruptSpec>,
    #[serde(
        rename = "network-delay",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_delay: Option<PmNetworkDelaySpec>,
    #[serde(
        rename = "network-dns",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_dns: Option<PmNetworkDnsSpec>,
    #[serde(
        rename = "network-down",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_down: Option<PmNetworkDownSpec>,
    #[serde(
        rename = "network-duplicate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_duplicate: Option<PmNetworkDuplicateSpec>,
    #[serde(
        rename = "network-flood",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_flood: Option<PmNetworkFloodSpec>,
    #[serde(
        rename = "network-loss",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_loss: Option<PmNetworkLossSpec>,
    #[serde(
        rename = "network-partition",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_partition: Option<PmNetworkPartitionSpec>,
    #[serde(rename = "process", default, skip_serializing_if = "Option::is_none")]
    pub process: Option<PmProcessSpec>,
    #[serde(
        rename = "redis-cacheLimit",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub redis_cache_limit: Option<PmRedisCacheLimitSpec>,
    #[serde(
        rename = "redis-expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub redis_expiration: Option<PmRedisExpirationSpec>,
    #[serde(
        rename = "redis-penetration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub redis_penetration: Option<PmRedisPenetrationSpec>,
    #[serde(
        rename = "redis-restart",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub redis_restart: Option<PmRedisRestartSpec>,
    #[serde(
        rename = "redis-stop",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub redis_stop: Option<PmRedisStopSpec>,
    #[serde(
        rename = "stress-cpu",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stress_cpu: Option<PmStressCpuSpec>,
    #[serde(
        rename = "stress-mem",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stress_mem: Option<PmStressMemSpec>,
    #[serde(
        rename = "user_defined",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_defined: Option<PmUserDefinedSpec>,
    #[serde(rename = "vm", default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<PmVmSpec>,
}

impl PhysicalMachineChaosSpec {
    /// Every action block, by its field name, and whether it is set.
    pub fn blocks(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("clock", self.clock.is_some()),
            ("disk-fill", self.disk_fill.is_some()),
            ("disk-read-payload", self.disk_read_payload.is_some()),
            ("disk-write-payload", self.disk_write_payload.is_some()),
            ("file-append", self.file_append.is_some()),
            ("file-create", self.file_create.is_some()),
            ("file-delete", self.file_delete.is_some()),
            ("file-modify", self.file_modify.is_some()),
            ("file-rename", self.file_rename.is_some()),
            ("file-replace", self.file_replace.is_some()),
            ("http-abort", self.http_abort.is_some()),
            ("http-config", self.http_config.is_some()),
            ("http-delay", self.http_delay.is_some()),
            ("http-request", self.http_request.is_some()),
            ("jvm-exception", self.jvm_exception.is_some()),
            ("jvm-gc", self.jvm_gc.is_some()),
            ("jvm-latency", self.jvm_latency.is_some()),
            ("jvm-mysql", self.jvm_mysql.is_some()),
            ("jvm-return", self.jvm_return.is_some()),
            ("jvm-rule-data", self.jvm_rule_data.is_some()),
            ("jvm-stress", self.jvm_stress.is_some()),
            ("kafka-fill", self.kafka_fill.is_some()),
            ("kafka-flood", self.kafka_flood.is_some()),
            ("kafka-io", self.kafka_io.is_some()),
            ("network-bandwidth", self.network_bandwidth.is_some()),
            ("network-corrupt", self.network_corrupt.is_some()),
            ("network-delay", self.network_delay.is_some()),
            ("network-dns", self.network_dns.is_some()),
            ("network-down", self.network_down.is_some()),
            ("network-duplicate", self.network_duplicate.is_some()),
            ("network-flood", self.network_flood.is_some()),
            ("network-loss", self.network_loss.is_some()),
            ("network-partition", self.network_partition.is_some()),
            ("process", self.process.is_some()),
            ("redis-cacheLimit", self.redis_cache_limit.is_some()),
            ("redis-expiration", self.redis_expiration.is_some()),
            ("redis-penetration", self.redis_penetration.is_some()),
            ("redis-restart", self.redis_restart.is_some()),
            ("redis-stop", self.redis_stop.is_some()),
            ("stress-cpu", self.stress_cpu.is_some()),
            ("stress-mem", self.stress_mem.is_some()),
            ("user_defined", self.user_defined.is_some()),
            ("vm", self.vm.is_some()),
        ]
    }
}

/// The `clock` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmClockSpec {
    /// the identifier of the particular clock on which to act. More clock description in linux kernel can be found in man page of clock_getres, clock_gettime, clock_settime. Muti…
    #[serde(
        rename = "clock-ids-slice",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub clock_ids_slice: Option<String>,
    /// the pid of target program.
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// specifies the length of time offset.
    #[serde(
        rename = "time-offset",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub time_offset: Option<String>,
}

/// The `disk-fill` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmDiskFillSpec {
    /// fill disk by fallocate
    #[serde(
        rename = "fill-by-fallocate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fill_by_fallocate: Option<bool>,
    /// specifies the location to fill data in. if path not provided, payload will read/write from/into a temp file, temp file will be deleted after writing
    #[serde(rename = "path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// specifies how many units of data will write into the file path. support unit: c=1, w=2, b=512, kB=1000, K=1024, MB=1000*1000, M=1024*1024, GB=1000*1000*1000, G=1024*1024*1024…
    #[serde(rename = "size", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The `disk-read-payload` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmDiskReadPayloadSpec {
    /// specifies the location to fill data in. if path not provided, payload will read/write from/into a temp file, temp file will be deleted after writing
    #[serde(rename = "path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// specifies the number of process work on writing, default 1, only 1-255 is valid value
    #[serde(
        rename = "payload-process-num",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_process_num: Option<i64>,
    /// specifies how many units of data will write into the file path. support unit: c=1, w=2, b=512, kB=1000, K=1024, MB=1000*1000, M=1024*1024, GB=1000*1000*1000, G=1024*1024*1024…
    #[serde(rename = "size", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The `disk-write-payload` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmDiskWritePayloadSpec {
    /// specifies the location to fill data in. if path not provided, payload will read/write from/into a temp file, temp file will be deleted after writing
    #[serde(rename = "path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// specifies the number of process work on writing, default 1, only 1-255 is valid value
    #[serde(
        rename = "payload-process-num",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_process_num: Option<i64>,
    /// specifies how many units of data will write into the file path. support unit: c=1, w=2, b=512, kB=1000, K=1024, MB=1000*1000, M=1024*1024, GB=1000*1000*1000, G=1024*1024*1024…
    #[serde(rename = "size", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The `file-append` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmFileAppendSpec {
    /// Count is the number of times to append the data.
    #[serde(rename = "count", default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Data is the data for append.
    #[serde(rename = "data", default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// FileName is the name of the file to be created, modified, deleted, renamed, or appended.
    #[serde(rename = "file-name", default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// The `file-create` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmFileCreateSpec {
    /// DirName is the directory name to create or delete.
    #[serde(rename = "dir-name", default, skip_serializing_if = "Option::is_none")]
    pub dir_name: Option<String>,
    /// FileName is the name of the file to be created, modified, deleted, renamed, or appended.
    #[serde(rename = "file-name", default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// The `file-delete` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmFileDeleteSpec {
    /// DirName is the directory name to create or delete.
    #[serde(rename = "dir-name", default, skip_serializing_if = "Option::is_none")]
    pub dir_name: Option<String>,
    /// FileName is the name of the file to be created, modified, deleted, renamed, or appended.
    #[serde(rename = "file-name", default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// The `file-modify` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmFileModifySpec {
    /// FileName is the name of the file to be created, modified, deleted, renamed, or appended.
    #[serde(rename = "file-name", default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Privilege is the file privilege to be set.
    #[serde(rename = "privilege", default, skip_serializing_if = "Option::is_none")]
    pub privilege: Option<i32>,
}

/// The `file-rename` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmFileRenameSpec {
    /// DestFile is the name to be renamed.
    #[serde(rename = "dest-file", default, skip_serializing_if = "Option::is_none")]
    pub dest_file: Option<String>,
    /// SourceFile is the name need to be renamed.
    #[serde(
        rename = "source-file",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_file: Option<String>,
}

/// The `file-replace` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmFileReplaceSpec {
    /// DestStr is the destination string of the file.
    #[serde(
        rename = "dest-string",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dest_string: Option<String>,
    /// FileName is the name of the file to be created, modified, deleted, renamed, or appended.
    #[serde(rename = "file-name", default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Line is the line number of the file to be replaced.
    #[serde(rename = "line", default, skip_serializing_if = "Option::is_none")]
    pub line: Option<i64>,
    /// OriginStr is the origin string of the file.
    #[serde(
        rename = "origin-string",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_string: Option<String>,
}

/// The `http-abort` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmHttpAbortSpec {
    /// Code is a rule to select target by http status code in response
    #[serde(rename = "code", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// HTTP method
    #[serde(rename = "method", default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Match path of Uri with wildcard matches
    #[serde(rename = "path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The TCP port that the target service listens on
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Composed with one of the port of HTTP connection, we will only attack HTTP connection with port inside proxy_ports
    #[serde(rename = "proxy_ports")]
    pub proxy_ports: Vec<i64>,
    /// HTTP target: Request or Response
    #[serde(rename = "target")]
    pub target: String,
}

/// The `http-config` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmHttpConfigSpec {
    /// The config file path
    #[serde(rename = "file_path", default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
}

/// The `http-delay` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmHttpDelaySpec {
    /// Code is a rule to select target by http status code in response
    #[serde(rename = "code", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Delay represents the delay of the target request/response
    #[serde(rename = "delay")]
    pub delay: String,
    /// HTTP method
    #[serde(rename = "method", default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Match path of Uri with wildcard matches
    #[serde(rename = "path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The TCP port that the target service listens on
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Composed with one of the port of HTTP connection, we will only attack HTTP connection with port inside proxy_ports
    #[serde(rename = "proxy_ports")]
    pub proxy_ports: Vec<i64>,
    /// HTTP target: Request or Response
    #[serde(rename = "target")]
    pub target: String,
}

/// used for HTTP request, now only support GET
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmHttpRequestSpec {
    /// The number of requests to send
    #[serde(rename = "count", default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Enable connection pool
    #[serde(
        rename = "enable-conn-pool",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_conn_pool: Option<bool>,
    /// Request to send"
    #[serde(rename = "url", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The `jvm-exception` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmExceptionSpec {
    /// Java class
    #[serde(rename = "class", default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// the exception which needs to throw for action `exception`
    #[serde(rename = "exception", default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// the method in Java class
    #[serde(rename = "method", default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// The `jvm-gc` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmGcSpec {
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// The `jvm-latency` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmLatencySpec {
    /// Java class
    #[serde(rename = "class", default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// the latency duration for action 'latency', unit ms
    #[serde(rename = "latency", default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<i64>,
    /// the method in Java class
    #[serde(rename = "method", default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// The `jvm-mysql` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmMysqlSpec {
    /// the match database default value is "", means match all database
    #[serde(rename = "database", default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The exception which needs to throw for action `exception` or the exception message needs to throw in action `mysql`
    #[serde(rename = "exception", default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// The latency duration for action 'latency' or the latency duration in action `mysql`
    #[serde(rename = "latency", default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<i64>,
    /// the version of mysql-connector-java, only support 5.X.X(set to "5") and 8.X.X(set to "8") now
    #[serde(
        rename = "mysqlConnectorVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mysql_connector_version: Option<String>,
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// the match sql type default value is "", means match all SQL type. The value can be 'select', 'insert', 'update', 'delete', 'replace'.
    #[serde(rename = "sqlType", default, skip_serializing_if = "Option::is_none")]
    pub sql_type: Option<String>,
    /// the match table default value is "", means match all table
    #[serde(rename = "table", default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// The `jvm-return` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmReturnSpec {
    /// Java class
    #[serde(rename = "class", default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// the method in Java class
    #[serde(rename = "method", default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// the return value for action 'return'
    #[serde(rename = "value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The `jvm-rule-data` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmRuleDataSpec {
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// RuleData used to save the rule file's data, will use it when recover
    #[serde(rename = "rule-data", default, skip_serializing_if = "Option::is_none")]
    pub rule_data: Option<String>,
}

/// The `jvm-stress` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmJvmStressSpec {
    /// the CPU core number need to use, only set it when action is stress
    #[serde(rename = "cpu-count", default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    /// the memory type need to locate, only set it when action is stress, the value can be 'stack' or 'heap'
    #[serde(rename = "mem-type", default, skip_serializing_if = "Option::is_none")]
    pub mem_type: Option<String>,
    /// the pid of Java process which needs to attach
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// the port of agent server, default 9277
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// The `kafka-fill` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmKafkaFillSpec {
    /// The host of kafka server
    #[serde(rename = "host", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The max bytes to fill
    #[serde(rename = "maxBytes", default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// The size of each message
    #[serde(
        rename = "messageSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message_size: Option<i64>,
    /// The password of kafka client
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The port of kafka server
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The command to reload kafka config
    #[serde(
        rename = "reloadCommand",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reload_command: Option<String>,
    /// The topic to attack
    #[serde(rename = "topic", default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The username of kafka client
    #[serde(rename = "username", default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The `kafka-flood` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmKafkaFloodSpec {
    /// The host of kafka server
    #[serde(rename = "host", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The size of each message
    #[serde(
        rename = "messageSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message_size: Option<i64>,
    /// The password of kafka client
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The port of kafka server
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The number of worker threads
    #[serde(rename = "threads", default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<i64>,
    /// The topic to attack
    #[serde(rename = "topic", default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The username of kafka client
    #[serde(rename = "username", default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The `kafka-io` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmKafkaIoSpec {
    /// The path of server config
    #[serde(
        rename = "configFile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub config_file: Option<String>,
    /// Make kafka cluster non-readable
    #[serde(
        rename = "nonReadable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub non_readable: Option<bool>,
    /// Make kafka cluster non-writable
    #[serde(
        rename = "nonWritable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub non_writable: Option<bool>,
    /// The topic to attack
    #[serde(rename = "topic", default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// The `network-bandwidth` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkBandwidthSpec {
    #[serde(rename = "buffer")]
    #[schemars(range(min = 1))]
    pub buffer: i32,
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(rename = "hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    #[serde(rename = "limit")]
    #[schemars(range(min = 1))]
    pub limit: i32,
    #[serde(rename = "minburst", default, skip_serializing_if = "Option::is_none")]
    pub minburst: Option<i32>,
    #[serde(rename = "peakrate", default, skip_serializing_if = "Option::is_none")]
    pub peakrate: Option<i64>,
    #[serde(rename = "rate")]
    pub rate: String,
}

/// The `network-corrupt` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkCorruptSpec {
    /// correlation is percentage (10 is 10%)
    #[serde(
        rename = "correlation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation: Option<String>,
    /// the network interface to impact
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// only impact egress traffic to these destination ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or…
    #[serde(
        rename = "egress-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_port: Option<String>,
    /// only impact traffic to these hostnames
    #[serde(rename = "hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// only impact egress traffic to these IP addresses
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    /// only impact traffic using this IP protocol, supported: tcp, udp, icmp, all
    #[serde(
        rename = "ip-protocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_protocol: Option<String>,
    /// percentage of packets to corrupt (10 is 10%)
    #[serde(rename = "percent", default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    /// only impact egress traffic from these source ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or -p udp
    #[serde(
        rename = "source-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_port: Option<String>,
}

/// The `network-delay` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkDelaySpec {
    /// only the packet which match the tcp flag can be accepted, others will be dropped. only set when the IPProtocol is tcp, used for partition.
    #[serde(
        rename = "accept-tcp-flags",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_tcp_flags: Option<String>,
    /// correlation is percentage (10 is 10%)
    #[serde(
        rename = "correlation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation: Option<String>,
    /// the network interface to impact
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// only impact egress traffic to these destination ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or…
    #[serde(
        rename = "egress-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_port: Option<String>,
    /// only impact traffic to these hostnames
    #[serde(rename = "hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// only impact egress traffic to these IP addresses
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    /// only impact traffic using this IP protocol, supported: tcp, udp, icmp, all
    #[serde(
        rename = "ip-protocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_protocol: Option<String>,
    /// jitter time, time units: ns, us (or µs), ms, s, m, h.
    #[serde(rename = "jitter", default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// delay egress time, time units: ns, us (or µs), ms, s, m, h.
    #[serde(rename = "latency", default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// only impact egress traffic from these source ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or -p udp
    #[serde(
        rename = "source-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_port: Option<String>,
}

/// The `network-dns` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkDnsSpec {
    /// map this host to specified IP
    #[serde(
        rename = "dns-domain-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_domain_name: Option<String>,
    /// map specified host to this IP address
    #[serde(rename = "dns-ip", default, skip_serializing_if = "Option::is_none")]
    pub dns_ip: Option<String>,
    /// update the DNS server in /etc/resolv.conf with this value
    #[serde(
        rename = "dns-server",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_server: Option<String>,
}

/// The `network-down` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkDownSpec {
    /// The network interface to impact
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// NIC down time, time units: ns, us (or µs), ms, s, m, h.
    #[serde(rename = "duration", default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// The `network-duplicate` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkDuplicateSpec {
    /// correlation is percentage (10 is 10%)
    #[serde(
        rename = "correlation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation: Option<String>,
    /// the network interface to impact
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// only impact egress traffic to these destination ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or…
    #[serde(
        rename = "egress-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_port: Option<String>,
    /// only impact traffic to these hostnames
    #[serde(rename = "hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// only impact egress traffic to these IP addresses
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    /// only impact traffic using this IP protocol, supported: tcp, udp, icmp, all
    #[serde(
        rename = "ip-protocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_protocol: Option<String>,
    /// percentage of packets to duplicate (10 is 10%)
    #[serde(rename = "percent", default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    /// only impact egress traffic from these source ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or -p udp
    #[serde(
        rename = "source-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_port: Option<String>,
}

/// The `network-flood` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkFloodSpec {
    /// The number of seconds to run the iperf test
    #[serde(rename = "duration")]
    pub duration: String,
    /// Generate traffic to this IP address
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    /// The number of iperf parallel client threads to run
    #[serde(rename = "parallel", default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<i32>,
    /// Generate traffic to this port on the IP address
    #[serde(rename = "port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The speed of network traffic, allows bps, kbps, mbps, gbps, tbps unit. bps means bytes per second
    #[serde(rename = "rate")]
    pub rate: String,
}

/// The `network-loss` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkLossSpec {
    /// correlation is percentage (10 is 10%)
    #[serde(
        rename = "correlation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation: Option<String>,
    /// the network interface to impact
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// only impact egress traffic to these destination ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or…
    #[serde(
        rename = "egress-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_port: Option<String>,
    /// only impact traffic to these hostnames
    #[serde(rename = "hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// only impact egress traffic to these IP addresses
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    /// only impact traffic using this IP protocol, supported: tcp, udp, icmp, all
    #[serde(
        rename = "ip-protocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_protocol: Option<String>,
    /// percentage of packets to loss (10 is 10%)
    #[serde(rename = "percent", default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    /// only impact egress traffic from these source ports, use a ',' to separate or to indicate the range, such as 80, 8001:8010. it can only be used in conjunction with -p tcp or -p udp
    #[serde(
        rename = "source-port",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_port: Option<String>,
}

/// The `network-partition` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmNetworkPartitionSpec {
    /// only the packet which match the tcp flag can be accepted, others will be dropped. only set when the IPProtocol is tcp, used for partition.
    #[serde(
        rename = "accept-tcp-flags",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_tcp_flags: Option<String>,
    /// the network interface to impact
    #[serde(rename = "device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// specifies the partition direction, values can be 'from', 'to'. 'from' means packets coming from the 'IPAddress' or 'Hostname' and going to your server, 'to' means packets…
    #[serde(rename = "direction", default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// only impact traffic to these hostnames
    #[serde(rename = "hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// only impact egress traffic to these IP addresses
    #[serde(
        rename = "ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_address: Option<String>,
    /// only impact egress traffic to these IP addresses
    #[serde(
        rename = "ip-protocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_protocol: Option<String>,
}

/// The `process` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmProcessSpec {
    /// the process name or the process ID
    #[serde(rename = "process", default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// the command to be run when recovering experiment
    #[serde(
        rename = "recoverCmd",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub recover_cmd: Option<String>,
    /// the signal number to send
    #[serde(rename = "signal", default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
}

/// The `redis-cacheLimit` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmRedisCacheLimitSpec {
    /// The adress of Redis server
    #[serde(rename = "addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The size of `maxmemory`
    #[serde(rename = "cacheSize", default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<String>,
    /// The password of Redis server
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Specifies maxmemory as a percentage of the original value
    #[serde(rename = "percent", default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
}

/// The `redis-expiration` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmRedisExpirationSpec {
    /// The adress of Redis server
    #[serde(rename = "addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The expiration of the keys
    #[serde(
        rename = "expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration: Option<String>,
    /// The keys to be expired
    #[serde(rename = "key", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Additional options for `expiration`
    #[serde(rename = "option", default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// The password of Redis server
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The `redis-penetration` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmRedisPenetrationSpec {
    /// The adress of Redis server
    #[serde(rename = "addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The password of Redis server
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The number of requests to be sent
    #[serde(
        rename = "requestNum",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_num: Option<i64>,
}

/// The `redis-restart` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmRedisRestartSpec {
    /// The adress of Redis server
    #[serde(rename = "addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The path of Sentinel conf
    #[serde(rename = "conf", default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<String>,
    /// The control flag determines whether to flush config
    #[serde(
        rename = "flushConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub flush_config: Option<bool>,
    /// The password of Redis server
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The path of `redis-server` command-line tool
    #[serde(rename = "redisPath", default, skip_serializing_if = "Option::is_none")]
    pub redis_path: Option<bool>,
}

/// The `redis-stop` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmRedisStopSpec {
    /// The adress of Redis server
    #[serde(rename = "addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The path of Sentinel conf
    #[serde(rename = "conf", default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<String>,
    /// The control flag determines whether to flush config
    #[serde(
        rename = "flushConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub flush_config: Option<bool>,
    /// The password of Redis server
    #[serde(rename = "password", default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The path of `redis-server` command-line tool
    #[serde(rename = "redisPath", default, skip_serializing_if = "Option::is_none")]
    pub redis_path: Option<bool>,
}

/// The `stress-cpu` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmStressCpuSpec {
    /// specifies P percent loading per CPU worker. 0 is effectively a sleep (no load) and 100 is full loading.
    #[serde(rename = "load", default, skip_serializing_if = "Option::is_none")]
    pub load: Option<i64>,
    /// extend stress-ng options
    #[serde(rename = "options", default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// specifies N workers to apply the stressor.
    #[serde(rename = "workers", default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
}

/// The `stress-mem` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmStressMemSpec {
    /// extend stress-ng options
    #[serde(rename = "options", default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// specifies N bytes consumed per vm worker, default is the total available memory. One can specify the size as % of total available memory or in units of B, KB/KiB, MB/MiB,…
    #[serde(rename = "size", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// The `user_defined` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmUserDefinedSpec {
    /// The command to be executed when attack
    #[serde(rename = "attackCmd", default, skip_serializing_if = "Option::is_none")]
    pub attack_cmd: Option<String>,
    /// The command to be executed when recover
    #[serde(
        rename = "recoverCmd",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub recover_cmd: Option<String>,
}

/// The `vm` block of a `PhysicalMachineChaos`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmVmSpec {
    /// The name of the VM to be injected
    #[serde(rename = "vm-name", default, skip_serializing_if = "Option::is_none")]
    pub vm_name: Option<String>,
}

fn check_netem_common(
    p: &str,
    percent: Option<&str>,
    correlation: Option<&str>,
    errors: &mut ValidationErrors,
) {
    check_percent_str(percent, p, "percent", errors);
    check_percent_str(correlation, p, "correlation", errors);
}

impl Validate for PhysicalMachineChaosSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_mode_value(self.mode, self.value.as_deref(), path, errors);
        check_duration(self.duration.as_deref(), path, "duration", errors);
        check_environment(self.environment.as_deref(), path, errors);
        match &self.selector {
            Some(selector) => selector.validate(&join_path(path, "selector"), errors),
            None if self.address.is_empty() => errors.push(
                join_path(path, "selector"),
                "is required (or the deprecated spec.address list)",
            ),
            None => {}
        }
        for (i, address) in self.address.iter().enumerate() {
            if address.trim().is_empty() {
                errors.push(
                    format!("{}[{i}]", join_path(path, "address")),
                    "must not be empty",
                );
            }
        }
        let action = self.action.as_str();
        if !self
            .blocks()
            .iter()
            .any(|(name, set)| *name == action && *set)
        {
            errors.push(
                join_path(path, action),
                format!("is required when action is {action} (the attack's parameters)"),
            );
        }
        if let Some(b) = &self.network_delay {
            let p = join_path(path, "network-delay");
            check_duration(b.latency.as_deref(), &p, "latency", errors);
            check_duration(b.jitter.as_deref(), &p, "jitter", errors);
            check_percent_str(b.correlation.as_deref(), &p, "correlation", errors);
            if action == "network-delay" && b.latency.is_none() {
                errors.push(
                    join_path(&p, "latency"),
                    "is required when action is network-delay",
                );
            }
        }
        if let Some(b) = &self.network_loss {
            let p = join_path(path, "network-loss");
            check_netem_common(&p, b.percent.as_deref(), b.correlation.as_deref(), errors);
        }
        if let Some(b) = &self.network_corrupt {
            let p = join_path(path, "network-corrupt");
            check_netem_common(&p, b.percent.as_deref(), b.correlation.as_deref(), errors);
        }
        if let Some(b) = &self.network_duplicate {
            let p = join_path(path, "network-duplicate");
            check_netem_common(&p, b.percent.as_deref(), b.correlation.as_deref(), errors);
        }
        if let Some(b) = &self.network_bandwidth {
            let p = join_path(path, "network-bandwidth");
            check_rate(&b.rate, &p, "rate", errors);
            check_range(
                Some(b.limit.into()),
                1,
                i64::from(i32::MAX),
                &p,
                "limit",
                errors,
            );
            check_range(
                Some(b.buffer.into()),
                1,
                i64::from(i32::MAX),
                &p,
                "buffer",
                errors,
            );
        }
        if let Some(b) = &self.network_partition {
            if let Some(direction) = &b.direction {
                if direction != "from" && direction != "to" {
                    errors.push(
                        join_path(&join_path(path, "network-partition"), "direction"),
                        format!("must be from or to; got {direction:?}"),
                    );
                }
            }
        }
        if let Some(b) = &self.network_down {
            check_duration(
                b.duration.as_deref(),
                &join_path(path, "network-down"),
                "duration",
                errors,
            );
        }
        if let Some(b) = &self.clock {
            check_signed_duration(
                b.time_offset.as_deref(),
                &join_path(path, "clock"),
                "time-offset",
                errors,
            );
        }
        if let Some(b) = &self.http_delay {
            check_duration(
                Some(&b.delay),
                &join_path(path, "http-delay"),
                "delay",
                errors,
            );
        }
        if let Some(b) = &self.stress_cpu {
            check_range(
                b.load,
                0,
                100,
                &join_path(path, "stress-cpu"),
                "load",
                errors,
            );
        }
        let payloads = [
            (
                "disk-read-payload",
                self.disk_read_payload
                    .as_ref()
                    .and_then(|b| b.payload_process_num),
            ),
            (
                "disk-write-payload",
                self.disk_write_payload
                    .as_ref()
                    .and_then(|b| b.payload_process_num),
            ),
        ];
        for (field, num) in payloads {
            check_range(
                num,
                1,
                255,
                &join_path(path, field),
                "payload-process-num",
                errors,
            );
        }
        if let Some(b) = &self.process {
            if action == "process" && b.process.as_deref().is_none_or(|s| s.trim().is_empty()) {
                errors.push(
                    join_path(&join_path(path, "process"), "process"),
                    "is required when action is process (a process name or PID)",
                );
            }
        }
        if let Some(b) = &self.user_defined {
            if action == "user_defined"
                && b.attack_cmd.as_deref().is_none_or(|s| s.trim().is_empty())
            {
                errors.push(
                    join_path(&join_path(path, "user_defined"), "attackCmd"),
                    "is required when action is user_defined",
                );
            }
        }
    }
}

impl FaultSpec for PhysicalMachineChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    /// `None` when the experiment addresses chaosd servers by `address` only.
    fn target_selector(&self) -> Option<TargetSelector> {
        self.selector
            .as_ref()
            .map(PhysicalMachineSelectorSpec::to_target_selector)
    }
    common_fault_accessors!();
}
