//! Generated protobuf and gRPC code for every Switchyard service.
//!
//! Prost types stay at the edges: each service converts them into its own
//! domain types with `TryFrom`.

pub mod common {
    pub mod v1 {
        tonic::include_proto!("switchyard.common.v1");
    }
}
pub mod provider {
    pub mod v1 {
        tonic::include_proto!("switchyard.provider.v1");
    }
}
pub mod catalog {
    pub mod v1 {
        tonic::include_proto!("switchyard.catalog.v1");
    }
}
pub mod metering {
    pub mod v1 {
        tonic::include_proto!("switchyard.metering.v1");
    }
}
pub mod router {
    pub mod v1 {
        tonic::include_proto!("switchyard.router.v1");
    }
}

/// Encoded `FileDescriptorSet` of all Switchyard protos, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchyard_descriptor.bin"));
