"""The operations: one per RPC, each a typed ``Operation`` that validates its keyword
arguments and builds the call without doing I/O. ``REGISTRY`` lists every one of them by
name; the clients expose each as a method of the same name (a test holds them to it)."""

from jobforge_sdk._operations import connectors, limits, plane, queue
from jobforge_sdk._operations._machinery import REGISTRY, Operation, RpcCall

__all__ = ["REGISTRY", "Operation", "RpcCall", "connectors", "limits", "plane", "queue"]
