"""Benchmark: offscreen frame time of MuJoCo rendering under the GL backend bm_gym picks (EGL first, else OSMesa).

    python -m tools.bench_render                       # the G1 scene of the env and the demo, 480x360 and 1280x960
    MUJOCO_GL=osmesa python -m tools.bench_render      # force the software fallback for comparison
    python -m tools.bench_render --scene synthetic     # 40 primitive bodies, no assets: runs with only mujoco installed

Each frame is one physics step, a scene update and a render (read back to host memory), as ``env.render()``,
``RecordVideo`` and the demo video do.
"""

from __future__ import annotations

import argparse
import os
import time

import bm_gym  # noqa: F401 - picks MUJOCO_GL before MuJoCo loads

SIZES = ((480, 360), (1280, 960))


def synthetic_model():
    import mujoco

    shapes = ("capsule", "box", "sphere", "cylinder")
    bodies = "".join(
        f'<body pos="{0.4 * (k % 8) - 1.4} {0.4 * (k // 8) - 1} 1"><freejoint/><geom type="{shapes[k % 4]}" '
        f'size=".1 .12 .15" rgba="{k % 3 / 2} .5 .7 1"/></body>'
        for k in range(40)
    )
    xml = ('<mujoco><visual><global offwidth="1280" offheight="960"/></visual><worldbody><light pos="0 0 4"/>'
           f'<geom type="plane" size="10 10 .1" rgba=".3 .3 .35 1"/>{bodies}</worldbody></mujoco>')  # fmt: skip
    return mujoco.MjModel.from_xml_string(xml)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", choices=("g1", "synthetic"), default="g1")
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()

    import mujoco

    if args.scene == "g1":
        from bm_gym.sim import MujocoBackend

        backend = MujocoBackend()
        backend.reset(seed=0)
        model, data = backend.model, backend.data
    else:
        model = synthetic_model()
        data = mujoco.MjData(model)
    print(f"scene {args.scene}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}")
    for width, height in SIZES:
        model.vis.global_.offwidth, model.vis.global_.offheight = (
            max(model.vis.global_.offwidth, width),
            max(model.vis.global_.offheight, height),
        )
        renderer = mujoco.Renderer(model, height=height, width=width)
        for _ in range(3):  # context, textures and buffers are made on the first frames
            renderer.update_scene(data)
            renderer.render()
        start = time.perf_counter()
        for _ in range(args.frames):
            mujoco.mj_step(model, data)
            renderer.update_scene(data)
            renderer.render()
        print(f"{width}x{height}: {(time.perf_counter() - start) / args.frames * 1e3:.2f} ms per frame")
        renderer.close()


if __name__ == "__main__":
    main()
