"""f2p_datasets: data generated in the simulated world for every learned system.

Owns: ``datagen`` (Γ's transitions, ``f2p-datagen``), ``failcot`` (Guardian's FailCoT,
``f2p-failcot``), ``image_data`` (segmentation images, ``f2p-render-seg-data``), ``skill_tasks``
and ``afil_data`` (AFIL's skill tasks, demonstrations, failure rollouts and corrections);
``real_frames``: labelled real RGB-D frames in one format (``f2p-convert-frames``), to score
perception on.
May import: the simulator (``f2p_sim``, layer 1) and the robot-side models it makes data for;
no ROS, no training or learning code.
"""
